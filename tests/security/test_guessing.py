"""Guessing: failed verifications are limited per calling application (and the limiter
steps aside, loudly, when its cache fails); portal links are single-use, short-lived and
unguessable. (Under load across workers: tests/reliability/test_concurrency.py.)
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apikeys import crypto, services
from portal import services as portal_services
from portal.exceptions import PortalLinkExpired, PortalLinkInvalid, PortalLinkUsed
from portal.models import MAX_LINK_LIFETIME_SECONDS, PortalLink, SelfServeSettings
from tests.factories import last_character_changed
from tests.limiter import break_limiter
from tests.security.conftest import World

pytestmark = pytest.mark.django_db

LIMIT = 4
WINDOW = 60


@pytest.fixture
def limited(settings: Any) -> None:
    settings.APIKEYS = {
        **settings.APIKEYS,
        "VERIFY_FAILURE_LIMIT": LIMIT,
        "VERIFY_FAILURE_WINDOW": WINDOW,
    }


def guess() -> str:
    body = crypto.KEY_PREFIX + "0" * crypto.RANDOM_LENGTH
    return body + crypto.checksum(body)


def verify(client: Any, key: str) -> Any:
    return client.post("/api/v1/api_keys/verify", {"api_key": key}, format="json")


def test_past_the_limit_failures_get_429_but_valid_keys_still_verify(
    limited: None, m2m_client: Any, world: World
) -> None:
    from django.core.cache import cache

    cache.clear()
    guesser = m2m_client(["verify:api_keys"], name="Guesser")
    answers = [verify(guesser, guess()) for _ in range(LIMIT + 3)]
    assert [a.status_code for a in answers] == [HTTPStatus.OK] * LIMIT + [
        HTTPStatus.TOO_MANY_REQUESTS
    ] * 3
    for answer in answers[LIMIT:]:
        assert answer.json()["errors"][0]["code"] == "RATE_LIMITED"
        assert 1 <= int(answer["Retry-After"]) <= WINDOW
        assert answer["RateLimit-Reset"] == answer["Retry-After"]
    # The same caller's valid key is not refused, and is still counted.
    valid = verify(guesser, world.keys[0].plaintext)
    assert valid.status_code == HTTPStatus.OK and valid.json()["is_valid"] is True
    # A typo of a valid key (a failure) is limited like any guess.
    assert (
        verify(guesser, last_character_changed(world.keys[0].plaintext)).status_code
        == HTTPStatus.TOO_MANY_REQUESTS
    )
    # Another application is not punished for the guesser's failures.
    other = m2m_client(["verify:api_keys"], name="Honest service")
    assert verify(other, guess()).status_code == HTTPStatus.OK


def test_when_the_limiter_storage_fails_the_limiter_steps_aside_with_a_warning(
    limited: None, m2m_client: Any, world: World, monkeypatch: Any, caplog: Any
) -> None:
    break_limiter(monkeypatch)
    client = m2m_client(["verify:api_keys"])
    with caplog.at_level(logging.WARNING, logger="apikeys.ratelimit"):
        answers = [verify(client, guess()) for _ in range(LIMIT + 2)]
        valid = verify(client, world.keys[0].plaintext)
    assert {a.status_code for a in answers} == {HTTPStatus.OK}
    assert {a.json()["code"] for a in answers} == {"API_KEY_INVALID"}
    assert valid.json()["is_valid"] is True
    assert "Rate-limit storage unavailable (ConnectionError); not limiting." in caplog.messages


# --------------------------------------------------------------------------- portal links


def make_link(world: World, **kwargs: Any) -> str:
    url = portal_services.portal_link_create(
        user=world.user,
        base_url="https://keys.example.com",
        actor=services.Actor.system(),
        **kwargs,
    )
    return url.rstrip("/").rsplit("/", 1)[1]


def test_a_portal_link_token_is_unguessable_and_only_its_digest_is_stored(world: World) -> None:
    token = make_link(world)
    assert len(token) == 43 and len(token) * math.log2(64) >= 256
    link = PortalLink.objects.get()
    assert token not in str(PortalLink.objects.values_list().get())
    assert link.digest == portal_services.token_digest(token)


def test_a_portal_link_works_once(world: World) -> None:
    token = make_link(world)
    assert portal_services.portal_link_redeem(token=token).user == world.user
    with pytest.raises(PortalLinkUsed):
        portal_services.portal_link_redeem(token=token)


def test_a_portal_link_lives_only_its_short_lifetime(world: World, monkeypatch: Any) -> None:
    lifetime = SelfServeSettings.load().portal_link_lifetime_seconds
    assert lifetime <= MAX_LINK_LIFETIME_SECONDS <= 3600
    token = make_link(world)
    link = PortalLink.objects.get()
    assert link.expires_at - link.created_on == timedelta(seconds=lifetime)
    later = link.expires_at + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    with pytest.raises(PortalLinkExpired):
        portal_services.portal_link_redeem(token=token)


def test_a_portal_link_lifetime_cannot_be_set_beyond_an_hour(db: Any) -> None:
    switches = SelfServeSettings.load()
    switches.portal_link_lifetime_seconds = MAX_LINK_LIFETIME_SECONDS + 1
    with pytest.raises(ValidationError):
        switches.full_clean()


@pytest.mark.parametrize("mangle", ["flip", "truncate", "extend", "other-alphabet", "empty"])
def test_a_tampered_portal_link_is_invalid(world: World, mangle: str) -> None:
    token = make_link(world)
    tampered = {
        "flip": token[:-1] + ("A" if token[-1] != "A" else "B"),
        "truncate": token[:-1],
        "extend": token + "A",
        "other-alphabet": token[:-1] + "=",
        "empty": "",
    }[mangle]
    with pytest.raises(PortalLinkInvalid):
        portal_services.portal_link_redeem(token=tampered)
    assert PortalLink.objects.get().used_at is None


# --------------------------------------------------------------------------- keys checked in-process


def test_guessing_keys_at_an_api_protected_in_process_is_limited_per_ip(
    settings: Any, world: World
) -> None:
    """``ApiKeyAuthentication`` (here the project's /example/users) limits refused keys per
    client IP like the verify endpoint: 429 past the limit, valid keys still let through."""
    from django.core.cache import cache
    from rest_framework.test import APIClient

    cache.clear()
    settings.APIKEYS = {
        **settings.APIKEYS,
        "AUTHENTICATION_FAILURE_LIMIT": LIMIT,
        "AUTHENTICATION_FAILURE_WINDOW": WINDOW,
    }

    def users(key: str, ip: str = "198.51.100.20") -> Any:
        return APIClient().get("/example/users", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=ip)

    answers = [users(guess()) for _ in range(LIMIT + 3)]
    assert [a.status_code for a in answers] == [HTTPStatus.UNAUTHORIZED] * LIMIT + [
        HTTPStatus.TOO_MANY_REQUESTS
    ] * 3
    for answer in answers[LIMIT:]:
        assert answer.json()["errors"][0]["code"] == "RATE_LIMITED"
        assert 1 <= int(answer["Retry-After"]) <= WINDOW
        assert answer["RateLimit-Reset"] == answer["Retry-After"]
    # A valid key (read:orders, not read:users) is still authenticated: 403 for its scope,
    # not 429.
    assert users(world.keys[0].plaintext).status_code == HTTPStatus.FORBIDDEN
    # The guesser's IP is limited, not everyone.
    assert users(guess(), ip="198.51.100.21").status_code == HTTPStatus.UNAUTHORIZED
