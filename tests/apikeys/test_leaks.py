"""Leaked keys: ``api_key_leak_report`` judges a reported string, revokes a live key through
``api_key_revoke`` (audited with reason, URL and source) and changes nothing otherwise; the
signature check GitHub's reports need (crypto); the start-up check of its public keys."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone

from apikeys import crypto, exceptions, services
from apikeys.checks import check_secret_scanning_settings
from apikeys.models import ApiKey, AuditEvent
from apikeys.services import LeakReport, Verification

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action


def _state() -> tuple[list[tuple[Any, ...]], int]:
    """Everything a report could change: every key's state and the audit trail's length."""
    keys = list(
        ApiKey.objects.order_by("pk").values_list(
            "pk", "status", "revoked_on", "digest", "previous_digest", "previous_expires_at"
        )
    )
    return keys, AuditEvent.objects.count()


def _report(key: Any, actor: services.Actor, **extra: Any) -> LeakReport:
    return services.api_key_leak_report(
        key=key,
        url=extra.get("url", "https://example.com/leak"),
        source=extra.get("source", "pastebin"),
        actor=actor,
    )


# ------------------------------------------------------------------ true positives


def test_a_live_key_is_revoked_at_once_and_the_audit_event_says_leaked_url_and_source(
    issued_key, actor
):
    report = services.api_key_leak_report(
        key=issued_key.plaintext,
        url="https://github.com/acme/app/blob/main/.env",
        source="content",
        actor=actor,
    )
    assert report == LeakReport(label="true_positive", key_id=issued_key.api_key.id)
    assert report.is_true_positive
    key = ApiKey.objects.get(pk=issued_key.api_key.pk)
    assert key.status == ApiKey.Status.REVOKED and key.revoked_on is not None
    event = AuditEvent.objects.get(action=Action.API_KEY_REVOKED, target_id=key.id)
    assert event.details == {
        "reason": "leaked",
        "url": "https://github.com/acme/app/blob/main/.env",
        "source": "content",
    }
    assert event.org_code == key.org_code


def test_a_revoked_leak_fails_verification_on_the_next_call(issued_key, actor):
    assert services.api_key_verify(key=issued_key.plaintext).is_valid
    _report(issued_key.plaintext, actor)
    result = services.api_key_verify(key=issued_key.plaintext)
    assert result.code == Verification.REVOKED
    assert result.key_id == issued_key.api_key.id


def test_the_previous_secret_inside_its_grace_period_is_a_live_key(issued_key, actor):
    """Verify still accepts it, so whoever holds it holds the key: revoked, both secrets end."""
    rotated = services.api_key_rotate(api_key=issued_key.api_key, grace_seconds=600, actor=actor)
    report = _report(issued_key.plaintext, actor)
    assert report.label == "true_positive" and report.key_id == issued_key.api_key.id
    assert services.api_key_verify(key=rotated.plaintext).code == Verification.REVOKED
    key = ApiKey.objects.get(pk=issued_key.api_key.pk)
    assert key.previous_digest is None and key.previous_expires_at is None


def test_a_system_actor_with_a_name_is_recorded_under_that_name(issued_key):
    actor = services.Actor(name="GitHub secret scanning", ip="192.0.2.7")
    _report(issued_key.plaintext, actor)
    event = AuditEvent.objects.get(action=Action.API_KEY_REVOKED)
    assert event.actor_label == "GitHub secret scanning"
    assert event.actor_type == AuditEvent.ActorType.SYSTEM
    assert event.ip == "192.0.2.7"


def test_missing_url_and_source_are_recorded_as_null(issued_key, actor):
    services.api_key_leak_report(key=issued_key.plaintext, url=None, source=None, actor=actor)
    event = AuditEvent.objects.get(action=Action.API_KEY_REVOKED)
    assert event.details == {"reason": "leaked", "url": None, "source": None}


# ------------------------------------------------------------------ false positives


def _malformed(issued: services.IssuedKey) -> str:
    return "k_live_not-a-key"


def _bad_checksum(issued: services.IssuedKey) -> str:
    last = issued.plaintext[-1]
    return issued.plaintext[:-1] + ("A" if last != "A" else "B")


def _unknown(issued: services.IssuedKey) -> str:
    return crypto.generate_key()


def _revoked(issued: services.IssuedKey) -> str:
    services.api_key_revoke(api_key=issued.api_key, actor=services.Actor.system())
    return issued.plaintext


def _expired(issued: services.IssuedKey) -> str:
    ApiKey.objects.filter(pk=issued.api_key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    return issued.plaintext


def _replaced_without_grace(issued: services.IssuedKey) -> str:
    services.api_key_rotate(api_key=issued.api_key, actor=services.Actor.system())
    return issued.plaintext


def _replaced_past_grace(issued: services.IssuedKey) -> str:
    services.api_key_rotate(api_key=issued.api_key, grace_seconds=60, actor=services.Actor.system())
    ApiKey.objects.filter(pk=issued.api_key.pk).update(
        previous_expires_at=timezone.now() - timedelta(seconds=1)
    )
    return issued.plaintext


def _not_a_string(issued: services.IssuedKey) -> Any:
    return 12345


def _empty(issued: services.IssuedKey) -> str:
    return ""


FALSE_POSITIVES: list[Callable[[services.IssuedKey], Any]] = [
    _malformed,
    _bad_checksum,
    _unknown,
    _revoked,
    _expired,
    _replaced_without_grace,
    _replaced_past_grace,
    _not_a_string,
    _empty,
]


@pytest.mark.parametrize("make", FALSE_POSITIVES, ids=lambda f: f.__name__.strip("_"))
def test_anything_but_a_live_key_is_a_false_positive_that_changes_nothing(
    issued_key, user_key, actor, make
):
    reported = make(issued_key)
    before = _state()
    report = _report(reported, actor)
    assert report == LeakReport(label="false_positive", key_id=None)
    assert not report.is_true_positive
    assert _state() == before
    # The other key, never reported, is untouched too.
    assert services.api_key_verify(key=user_key.plaintext).is_valid


def test_reporting_the_same_key_twice_revokes_once_and_audits_once(issued_key, actor):
    assert _report(issued_key.plaintext, actor).label == "true_positive"
    assert _report(issued_key.plaintext, actor).label == "false_positive"
    assert AuditEvent.objects.filter(action=Action.API_KEY_REVOKED).count() == 1


def test_a_malformed_key_costs_no_query(issued_key, actor, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert _report("k_live_short", actor).label == "false_positive"


def test_every_well_formed_false_positive_costs_the_same_statements(api, organization, actor):
    """Unknown, revoked, expired, replaced: one locked read by digest each, nothing more, so
    the database work does not tell them apart (verify's failure path reads once too)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def issued() -> services.IssuedKey:
        return services.api_key_issue(name="k", api=api, organization=organization, actor=actor)

    cases = {
        "unknown": _unknown(issued()),
        "revoked": _revoked(issued()),
        "expired": _expired(issued()),
        "replaced": _replaced_without_grace(issued()),
    }
    statements = {}
    for name, key in cases.items():
        with CaptureQueriesContext(connection) as queries:
            assert _report(key, actor).label == "false_positive"
        statements[name] = [
            q["sql"].split()[0] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]
        ]
    assert statements["unknown"] == ["SELECT"]
    assert all(kinds == statements["unknown"] for kinds in statements.values()), statements


def test_a_report_reveals_nothing_about_the_owner(issued_key, user_key, actor):
    """The verdict carries the label and, for a live key, its id: no owner, org or scope."""
    report = _report(user_key.plaintext, actor)
    assert set(vars(report)) == {"label", "key_id"}


# ------------------------------------------------------------------ url and source


@pytest.mark.parametrize(
    "field, value",
    [
        ("url", "https://example.com/" + "a" * 2048),
        ("url", 42),
        ("url", "https://example.com/\x00"),
        ("source", "s" * 129),
        ("source", ["github"]),
        ("source", "a\x00b"),
    ],
    ids=["url too long", "url not text", "url with NUL", "source too long", "source list", "NUL"],
)
def test_a_bad_url_or_source_is_refused_before_anything_changes(issued_key, actor, field, value):
    before = _state()
    kwargs = {"url": None, "source": None, field: value}
    with pytest.raises(exceptions.ValidationFailed) as raised:
        services.api_key_leak_report(key=issued_key.plaintext, actor=actor, **kwargs)
    assert raised.value.field == field and raised.value.code == "INVALID_FIELD"
    assert _state() == before
    assert services.api_key_verify(key=issued_key.plaintext).is_valid


def test_url_and_source_at_their_limits_are_accepted(issued_key, actor):
    url = "https://example.com/" + "a" * (2048 - len("https://example.com/"))
    report = services.api_key_leak_report(
        key=issued_key.plaintext, url=url, source="s" * 128, actor=actor
    )
    assert report.is_true_positive
    assert AuditEvent.objects.get(action=Action.API_KEY_REVOKED).details["url"] == url


# ------------------------------------------------------------------ api_key_revoke, other callers


def test_a_plain_revocation_keeps_its_audit_event_without_details(issued_key, actor):
    services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    assert AuditEvent.objects.get(action=Action.API_KEY_REVOKED).details == {}


def test_a_revocation_with_a_reason_records_it_and_its_details(issued_key, actor):
    services.api_key_revoke(
        api_key=issued_key.api_key, actor=actor, reason="compromised", details={"ticket": "T-1"}
    )
    event = AuditEvent.objects.get(action=Action.API_KEY_REVOKED)
    assert event.details == {"ticket": "T-1", "reason": "compromised"}


# ------------------------------------------------------------------ signatures (crypto)


def _key_pair(curve: ec.EllipticCurve | None = None) -> tuple[Any, str]:
    private = ec.generate_private_key(curve or ec.SECP256R1())
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, pem


def _sign(private: Any, message: bytes) -> str:
    return base64.b64encode(private.sign(message, ec.ECDSA(hashes.SHA256()))).decode()


def test_a_p256_signature_over_the_message_is_valid():
    private, pem = _key_pair()
    body = b'[{"token":"k_live_x","type":"t"}]'
    assert crypto.p256_signature_valid(
        public_key_pem=pem, signature_base64=_sign(private, body), message=body
    )


@pytest.mark.parametrize(
    "case", ["other message", "other key", "not base64", "not DER", "empty", "too long", "flipped"]
)
def test_every_bad_signature_is_simply_invalid(case):
    private, pem = _key_pair()
    other, _ = _key_pair()
    body = b'[{"token":"k_live_x","type":"t"}]'
    good = _sign(private, body)
    flipped = bytearray(base64.b64decode(good))
    flipped[-1] ^= 1
    signature = {
        "other message": _sign(private, body + b" "),
        "other key": _sign(other, body),
        "not base64": "!!!not base64!!!",
        "not DER": base64.b64encode(b"\x01" * 64).decode(),
        "empty": "",
        "too long": "A" * 10_000,
        "flipped": base64.b64encode(bytes(flipped)).decode(),
    }[case]
    assert not crypto.p256_signature_valid(
        public_key_pem=pem, signature_base64=signature, message=body
    )


def test_only_a_p256_public_key_loads():
    _, p256 = _key_pair()
    _, p384 = _key_pair(ec.SECP384R1())
    assert isinstance(crypto.load_p256_public_key(p256), ec.EllipticCurvePublicKey)
    for pem in (p384, "not a pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"):
        with pytest.raises(ValueError):
            crypto.load_p256_public_key(pem)
    # A key of another curve never verifies, even with its own valid signature.
    private384 = ec.generate_private_key(ec.SECP384R1())
    pem384 = (
        private384.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    signature = base64.b64encode(private384.sign(b"m", ec.ECDSA(hashes.SHA256()))).decode()
    assert not crypto.p256_signature_valid(
        public_key_pem=pem384, signature_base64=signature, message=b"m"
    )


def test_sha256_hex_is_githubs_token_hash():
    assert (
        crypto.sha256_hex("abc")
        == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


# ------------------------------------------------------------------ start-up check


def _check_ids(settings: Any, value: Any) -> list[str]:
    settings.APIKEYS = {**settings.APIKEYS, "SECRET_SCANNING_PUBLIC_KEYS": value}
    return [message.id for message in check_secret_scanning_settings()]


def test_the_start_up_check_accepts_p256_keys_and_nothing_at_all(settings):
    _, pem = _key_pair()
    assert _check_ids(settings, {"abc123": pem, "def456": _key_pair()[1]}) == []
    assert _check_ids(settings, {}) == []


@pytest.mark.parametrize(
    "value, expected",
    [
        ('{"abc": "not json', ["apikeys.E401"]),
        (["a list"], ["apikeys.E401"]),
        ({"abc": "not a pem"}, ["apikeys.E402"]),
        ({"abc": 42}, ["apikeys.E402"]),
        ({"": "pem"}, ["apikeys.E401"]),
        ({"p384": "P384"}, ["apikeys.E402"]),
        ({str(i): "P256" for i in range(33)}, ["apikeys.E401"]),
    ],
    ids=["not JSON", "a list", "bad PEM", "not text", "empty id", "P-384", "too many"],
)
def test_the_start_up_check_refuses_a_malformed_value(settings, value, expected):
    _, p256 = _key_pair()
    _, p384 = _key_pair(ec.SECP384R1())
    if isinstance(value, dict):
        value = {k: {"P256": p256, "P384": p384}.get(v, v) for k, v in value.items()}
    assert _check_ids(settings, value) == expected


def test_settings_keep_a_value_that_is_not_json_for_the_check_to_refuse(monkeypatch):
    from project.settings import _json_setting

    monkeypatch.setenv("APIKEYS_SECRET_SCANNING_PUBLIC_KEYS", '{"abc": "unterminated')
    assert _json_setting("APIKEYS_SECRET_SCANNING_PUBLIC_KEYS", {}) == '{"abc": "unterminated'
    monkeypatch.setenv("APIKEYS_SECRET_SCANNING_PUBLIC_KEYS", '{"abc": "pem"}')
    assert _json_setting("APIKEYS_SECRET_SCANNING_PUBLIC_KEYS", {}) == {"abc": "pem"}
    monkeypatch.delenv("APIKEYS_SECRET_SCANNING_PUBLIC_KEYS")
    assert _json_setting("APIKEYS_SECRET_SCANNING_PUBLIC_KEYS", {}) == {}
