"""Hypothesis on the key parser and its checksum (``apikeys/crypto.py``) and on verification
of arbitrary input.

The checksum's promise is that a typo never reaches the database: CRC-32 detects every
error burst of up to 32 bits, so every single-character substitution (one byte of ASCII)
and every swap of two adjacent characters (two bytes) is caught, and the 6 base62
characters it is written in (62^6 > 2^32) lose none of it. These properties are checked
over every position of generated keys, not a few chosen ones.
"""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from apikeys import crypto, services

RANDOM_PARTS = st.text(
    alphabet=crypto.ALPHABET, min_size=crypto.RANDOM_LENGTH, max_size=crypto.RANDOM_LENGTH
)
KEY_CHARACTERS = crypto.ALPHABET + "_"


def key_from(random_part: str) -> str:
    body = crypto.KEY_PREFIX + random_part
    return body + crypto.checksum(body)


def base62_decode(text: str) -> int:
    value = 0
    for char in text:
        value = value * 62 + crypto.ALPHABET.index(char)
    return value


@given(RANDOM_PARTS)
def test_every_key_built_from_a_random_part_is_well_formed(random_part: str) -> None:
    key = key_from(random_part)
    assert len(key) == crypto.KEY_LENGTH
    assert crypto.is_well_formed(key)
    assert (
        crypto.display_prefix(key)
        + key[crypto.DISPLAY_PREFIX_LENGTH : -4]
        + crypto.display_suffix(key)
        == key
    )


@given(RANDOM_PARTS, st.data())
def test_every_single_character_substitution_anywhere_is_rejected(
    random_part: str, data: Any
) -> None:
    key = key_from(random_part)
    position = data.draw(st.integers(0, len(key) - 1), label="position")
    replacement = data.draw(st.sampled_from(KEY_CHARACTERS + "-+/= \x00é"), label="replacement")
    assume(replacement != key[position])
    typo = key[:position] + replacement + key[position + 1 :]
    assert not crypto.is_well_formed(typo)


@given(RANDOM_PARTS, st.data())
def test_every_swap_of_adjacent_characters_is_rejected(random_part: str, data: Any) -> None:
    key = key_from(random_part)
    position = data.draw(st.integers(0, len(key) - 2), label="position")
    assume(key[position] != key[position + 1])
    swapped = key[:position] + key[position + 1] + key[position] + key[position + 2 :]
    assert not crypto.is_well_formed(swapped)


@given(RANDOM_PARTS, st.data())
def test_an_inserted_or_deleted_character_is_rejected(random_part: str, data: Any) -> None:
    key = key_from(random_part)
    position = data.draw(st.integers(0, len(key) - 1))
    char = data.draw(st.sampled_from(KEY_CHARACTERS))
    assert not crypto.is_well_formed(key[:position] + key[position + 1 :])
    assert not crypto.is_well_formed(key[:position] + char + key[position:])


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_the_checksum_encoding_is_fixed_width_and_loses_nothing(a: int, b: int) -> None:
    encoded = crypto._base62(a, crypto.CHECKSUM_LENGTH)
    assert len(encoded) == crypto.CHECKSUM_LENGTH
    assert set(encoded) <= set(crypto.ALPHABET)
    assert base62_decode(encoded) == a
    if a != b:
        assert encoded != crypto._base62(b, crypto.CHECKSUM_LENGTH)


LOOKALIKES = st.sampled_from(
    [
        "\uff41",  # fullwidth a
        "\u0430",  # Cyrillic a
        "\u0661",  # Arabic-Indic digit one (str.isdigit() says True)
        "\u00b2",  # superscript two
        "\u212a",  # Kelvin sign (lowercases to k)
    ]
)


@given(RANDOM_PARTS, st.data())
def test_unicode_lookalikes_of_the_alphabet_are_rejected(random_part: str, data: Any) -> None:
    key = key_from(random_part)
    position = data.draw(st.integers(0, len(key) - 1))
    assert not crypto.is_well_formed(key[:position] + data.draw(LOOKALIKES) + key[position + 1 :])


ANYTHING = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@given(ANYTHING)
def test_the_parser_answers_false_for_anything_that_is_not_a_key(value: Any) -> None:
    assert crypto.is_well_formed(value) is False


@given(st.text(alphabet=string.printable + KEY_CHARACTERS, max_size=80))
def test_text_is_well_formed_only_with_our_prefix_length_alphabet_and_checksum(text: str) -> None:
    expected = (
        len(text) == crypto.KEY_LENGTH
        and text.startswith(crypto.KEY_PREFIX)
        and set(text[len(crypto.KEY_PREFIX) :]) <= set(crypto.ALPHABET)
        and crypto.checksum(text[: -crypto.CHECKSUM_LENGTH]) == text[-crypto.CHECKSUM_LENGTH :]
    )
    assert crypto.is_well_formed(text) is expected


@given(RANDOM_PARTS, st.text(min_size=32, max_size=64), st.text(min_size=32, max_size=64))
def test_the_digest_depends_on_the_hashing_secret_and_is_stable(
    random_part: str, first: str, second: str
) -> None:
    key = key_from(random_part)
    assert crypto.digest(key, first) == crypto.digest(key, first)
    assert len(crypto.digest(key, first)) == 64
    if first != second:
        assert crypto.digest(key, first) != crypto.digest(key, second)
    assert key not in crypto.digest(key, first)


@pytest.mark.django_db
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ANYTHING)
def test_verifying_anything_malformed_is_invalid_without_touching_the_database(
    django_assert_num_queries: Any, value: Any
) -> None:
    assume(not crypto.is_well_formed(value))
    with django_assert_num_queries(0):
        result = services.api_key_verify(key=value, ip="127.0.0.1")
    assert result.code == services.Verification.INVALID
    assert result.key_id is None and not result.is_valid


@pytest.mark.django_db
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(random_part=RANDOM_PARTS)
def test_a_well_formed_key_that_was_never_issued_is_invalid_and_names_nothing(
    issued_key: services.IssuedKey, random_part: str
) -> None:
    key = key_from(random_part)
    assume(key != issued_key.plaintext)
    result = services.api_key_verify(key=key, ip="127.0.0.1")
    assert result.code == services.Verification.INVALID
    assert (result.key_id, result.status, result.scopes) == (None, None, ())
