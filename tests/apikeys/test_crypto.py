"""Key material: format, entropy, checksum, digest."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apikeys import crypto


def test_generated_key_has_prefix_length_alphabet_and_valid_checksum():
    key = crypto.generate_key()
    assert re.fullmatch(r"k_live_[0-9A-Za-z]{46}", key)
    assert len(key) == crypto.KEY_LENGTH
    assert crypto.is_well_formed(key)


def test_random_part_carries_at_least_160_bits():
    import math

    assert crypto.RANDOM_LENGTH * math.log2(len(crypto.ALPHABET)) >= 160
    # What stays secret after the displayed prefix and the checksum are known.
    hidden = crypto.RANDOM_LENGTH - (crypto.DISPLAY_PREFIX_LENGTH - len(crypto.KEY_PREFIX))
    assert hidden * math.log2(62) - 32 >= 160


def test_keys_are_unique():
    assert len({crypto.generate_key() for _ in range(2000)}) == 2000


@pytest.mark.parametrize("position", [7, 20, 46, 52])
def test_any_single_character_typo_fails_the_checksum(position):
    key = crypto.generate_key()
    replacement = "a" if key[position] != "a" else "b"
    typo = key[:position] + replacement + key[position + 1 :]
    assert not crypto.is_well_formed(typo)


def test_swapped_adjacent_characters_fail_the_checksum():
    key = crypto.generate_key()
    for i in range(7, len(key) - 1):
        if key[i] != key[i + 1]:
            swapped = key[:i] + key[i + 1] + key[i] + key[i + 2 :]
            assert not crypto.is_well_formed(swapped)


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "k_live_",
        "k_test_" + "a" * 46,
        "k_live_" + "a" * 45,
        "k_live_" + "a" * 47,
        "k_live_" + "-" * 46,
        "K_LIVE_" + "a" * 46,
        None,
        123,
        b"k_live_" + b"a" * 46,
    ],
)
def test_malformed_candidates_are_rejected(candidate):
    assert not crypto.is_well_formed(candidate)


@given(st.text(max_size=80))
def test_arbitrary_text_is_never_accepted_unless_checksum_matches(text):
    if crypto.is_well_formed(text):
        assert text.startswith(crypto.KEY_PREFIX)
        assert crypto.checksum(text[:-6]) == text[-6:]


def test_a_well_formed_key_with_a_recomputed_checksum_is_well_formed_but_different():
    key = crypto.generate_key()
    body = key[:-6][:-1] + ("x" if key[-7] != "x" else "y")
    forged = body + crypto.checksum(body)
    assert crypto.is_well_formed(forged)
    assert crypto.digest(forged, "s" * 32) != crypto.digest(key, "s" * 32)


def test_digest_is_keyed_hex_sha256():
    key = crypto.generate_key()
    one = crypto.digest(key, "a" * 32)
    assert re.fullmatch(r"[0-9a-f]{64}", one)
    assert one == crypto.digest(key, "a" * 32)
    assert one != crypto.digest(key, "b" * 32)
    assert key not in one


def test_display_parts():
    key = crypto.generate_key()
    assert crypto.display_prefix(key) == key[:12]
    assert crypto.display_prefix(key).startswith("k_live_")
    assert crypto.display_suffix(key) == key[-4:]


def test_constant_time_equals():
    assert crypto.constant_time_equals("abc", "abc")
    assert not crypto.constant_time_equals("abc", "abd")
    assert not crypto.constant_time_equals("abc", "ab")
