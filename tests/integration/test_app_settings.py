"""The ``APIKEYS`` knobs: each documented with its default, and bad values refused by the
system checks at start-up."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from apikeys import conf


def apikeys_check_ids() -> list[str]:
    return [m.id for m in run_checks() if m.id and m.id.startswith("apikeys.")]


@pytest.mark.parametrize("name", sorted(conf.DEFAULTS))
def test_every_knob_is_documented_in_the_conf_module(name):
    assert f"``{name}``" in (conf.__doc__ or "")


def test_the_test_settings_pass_every_apikeys_check():
    assert apikeys_check_ids() == []


@pytest.mark.parametrize(
    "override, error_id",
    [
        ({"HASHING_SECRET": None}, "apikeys.E002"),
        ({"HASHING_SECRET": "too-short"}, "apikeys.E002"),
        ({"HASHING_SECRET": b"a-bytes-secret-that-is-long-enough-to-pass"}, "apikeys.E002"),
        ({"MAX_ROTATION_GRACE_SECONDS": -1}, "apikeys.E003"),
        ({"PORTAL_LOGIN_LOCKOUT_SECONDS": -60}, "apikeys.E104"),
        ({"VERIFY_FAILURE_WINDOW": -60}, "apikeys.E006"),
        ({"VERIFY_FAILURE_LIMIT": "300"}, "apikeys.E006"),
        ({"VERIFY_FAILURE_LIMIT": True}, "apikeys.E006"),
        ({"TOKEN_FAILURE_LIMIT": -1}, "apikeys.E006"),
        ({"TOKEN_FAILURE_WINDOW": "60"}, "apikeys.E006"),
        ({"AUTHENTICATION_FAILURE_LIMIT": -1}, "apikeys.E006"),
        ({"AUTHENTICATION_FAILURE_WINDOW": "60"}, "apikeys.E006"),
        ({"HASHING_SECRETS": "x" * 40}, "apikeys.E001"),
    ],
    ids=[
        "secret-missing",
        "secret-short",
        "secret-not-a-string",
        "negative-grace",
        "negative-lockout",
        "negative-window",
        "limit-as-text",
        "limit-as-bool",
        "negative-token-limit",
        "token-window-as-text",
        "negative-authentication-limit",
        "authentication-window-as-text",
        "unknown-knob",
    ],
)
def test_a_bad_value_is_flagged_once_at_start_up(settings, override, error_id):
    settings.APIKEYS = {**settings.APIKEYS, **override}

    assert apikeys_check_ids() == [error_id]
    with pytest.raises(SystemCheckError, match=error_id):
        call_command("check")


def test_zero_switches_the_verify_failure_limit_off_and_is_accepted(settings):
    settings.APIKEYS = {**settings.APIKEYS, "VERIFY_FAILURE_LIMIT": 0}

    assert apikeys_check_ids() == []


def test_a_knob_added_later_is_checked_by_the_kind_of_its_default(settings, monkeypatch):
    monkeypatch.setitem(conf.DEFAULTS, "SOME_FUTURE_LIFETIME_SECONDS", 60)
    settings.APIKEYS = {**settings.APIKEYS, "SOME_FUTURE_LIFETIME_SECONDS": -1}

    assert apikeys_check_ids() == ["apikeys.E006"]


def test_apikeys_that_is_not_a_dict_is_one_clear_error(settings):
    settings.APIKEYS = ["HASHING_SECRET", "x" * 40]

    assert apikeys_check_ids() == ["apikeys.E005"]
    with pytest.raises(ImproperlyConfigured, match="APIKEYS"):
        conf.get("HASHING_SECRET")


def test_a_hashing_secret_shared_with_secret_key_is_warned_about(settings):
    settings.SECRET_KEY = "s" * 50
    settings.APIKEYS = {**settings.APIKEYS, "HASHING_SECRET": "s" * 50}

    assert apikeys_check_ids() == ["apikeys.W001"]


CLIENT_HASHER = "apikeys.hashers.ClientSecretHasher"


@pytest.mark.parametrize(
    "case, expected",
    [
        ("client-secrets-password-hashed", ["apikeys.W002"]),
        ("client-hasher-not-registered", ["apikeys.E007"]),
        ("client-hasher-first", ["apikeys.E008"]),
        ("validator-not-ours", ["apikeys.W003"]),
    ],
)
def test_an_oauth_set_up_that_leaves_client_secrets_slow_or_tokens_uncut_is_flagged(
    settings, case, expected
):
    oauth = dict(settings.OAUTH2_PROVIDER)
    hashers = list(settings.PASSWORD_HASHERS)
    if case == "client-secrets-password-hashed":
        oauth.pop("CLIENT_SECRET_HASHER")
    elif case == "client-hasher-not-registered":
        hashers.remove(CLIENT_HASHER)
    elif case == "client-hasher-first":
        hashers = [CLIENT_HASHER, *[h for h in hashers if h != CLIENT_HASHER]]
    else:
        oauth["OAUTH2_VALIDATOR_CLASS"] = "oauth2_provider.oauth2_validators.OAuth2Validator"
    settings.OAUTH2_PROVIDER = oauth
    settings.PASSWORD_HASHERS = hashers

    assert apikeys_check_ids() == expected
