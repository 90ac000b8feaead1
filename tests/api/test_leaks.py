"""The two doors of leaked-key reports, over HTTP: ``POST /api/v1/api_keys/leaks`` (an M2M
token with ``report:api_key_leaks``) and ``POST /api/v1/secret_scanning/github`` (GitHub's
partner protocol, authenticated by an ECDSA P-256 signature over the raw body).

The tests make their own key pair and configure its public key as GitHub's."""

from __future__ import annotations

import base64
import json
import logging
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys import crypto, services
from apikeys.models import ApiKey, AuditEvent
from tests.api.conftest import ALL_SCOPES, error_codes

pytestmark = pytest.mark.django_db

LEAKS = "/api/v1/api_keys/leaks"
GITHUB = "/api/v1/secret_scanning/github"
KEY_ID = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a"
TOKEN_TYPE = "acme_api_key"


def _state() -> tuple[list[tuple[Any, ...]], int]:
    keys = list(
        ApiKey.objects.order_by("pk").values_list(
            "pk", "status", "revoked_on", "digest", "previous_digest"
        )
    )
    return keys, AuditEvent.objects.count()


def _issue(api: Any, **owner: Any) -> services.IssuedKey:
    return services.api_key_issue(name="Leaky", api=api, actor=services.Actor.system(), **owner)


@pytest.fixture
def reporter(make_client) -> APIClient:
    return make_client(["report:api_key_leaks"], name="Leak scanner")


@pytest.fixture
def verifier(make_client) -> APIClient:
    return make_client(["verify:api_keys"], name="Verifier")


def _verify_code(verifier: APIClient, plaintext: str) -> str:
    response = verifier.post("/api/v1/api_keys/verify", {"api_key": plaintext}, format="json")
    assert response.status_code == HTTPStatus.OK
    return response.json()["code"]


# =========================================================== POST /api/v1/api_keys/leaks


def test_a_live_key_reported_is_revoked_and_verify_says_so_on_the_next_call(
    reporter, verifier, issued_key
):
    assert _verify_code(verifier, issued_key.plaintext) == "API_KEY_VERIFIED"
    response = reporter.post(
        LEAKS,
        {"api_key": issued_key.plaintext, "url": "https://paste.example/abc", "source": "paste"},
        format="json",
    )
    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["code"] == "OK" and body["label"] == "true_positive"
    assert set(body) == {"code", "message", "label"}
    assert _verify_code(verifier, issued_key.plaintext) == "API_KEY_REVOKED"
    event = AuditEvent.objects.get(
        action=AuditEvent.Action.API_KEY_REVOKED, target_id=issued_key.api_key.id
    )
    assert event.details == {
        "reason": "leaked",
        "url": "https://paste.example/abc",
        "source": "paste",
    }
    assert event.actor_application == reporter.application


def test_the_answer_never_reveals_the_key_or_its_owner(reporter, issued_key):
    key = issued_key.api_key
    response = reporter.post(LEAKS, {"api_key": issued_key.plaintext}, format="json")
    text = response.content.decode()
    for secret in (issued_key.plaintext, key.id, key.org_code, key.name, key.api_public_id):
        assert secret not in text


@pytest.mark.parametrize(
    "make",
    ["malformed", "bad checksum", "unknown", "revoked", "expired"],
)
def test_anything_but_a_live_key_is_a_false_positive_with_the_same_shape(
    reporter, issued_key, make
):
    key = issued_key.plaintext
    if make == "malformed":
        key = "k_live_123"
    elif make == "bad checksum":
        key = key[:-1] + ("A" if key[-1] != "A" else "B")
    elif make == "unknown":
        key = crypto.generate_key()
    elif make == "revoked":
        services.api_key_revoke(api_key=issued_key.api_key, actor=services.Actor.system())
    elif make == "expired":
        ApiKey.objects.filter(pk=issued_key.api_key.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    before = _state()
    response = reporter.post(LEAKS, {"api_key": key, "source": "scanner"}, format="json")
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {
        "code": "OK",
        "message": response.json()["message"],
        "label": "false_positive",
    }
    assert _state() == before


@pytest.mark.parametrize(
    "body, field, code",
    [
        ({}, "api_key", "FIELD_REQUIRED"),
        ({"api_key": 12345}, "api_key", "INVALID_FIELD"),
        ({"api_key": ""}, "api_key", "INVALID_FIELD"),
        ({"api_key": None}, "api_key", "INVALID_FIELD"),
        ({"api_key": "KEY", "url": 7}, "url", "INVALID_FIELD"),
        ({"api_key": "KEY", "url": "https://e.example/" + "a" * 2048}, "url", "INVALID_FIELD"),
        ({"api_key": "KEY", "source": "s" * 129}, "source", "INVALID_FIELD"),
        ({"api_key": "KEY", "source": ["x"]}, "source", "INVALID_FIELD"),
        ({"api_key": "KEY", "source": "a\x00b"}, "source", "INVALID_FIELD"),
        ({"api_key": "KEY", "found_at": "x"}, "found_at", "UNKNOWN_FIELD"),
    ],
    ids=[
        "missing",
        "number",
        "empty",
        "null",
        "url number",
        "url too long",
        "source too long",
        "source list",
        "source NUL",
        "unknown field",
    ],
)
def test_strict_input_is_a_400_naming_the_field_and_changes_nothing(
    reporter, issued_key, body, field, code
):
    body = {k: issued_key.plaintext if v == "KEY" else v for k, v in body.items()}
    before = _state()
    response = reporter.post(LEAKS, body, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    errors = response.json()["errors"]
    assert [(e["code"], e.get("field")) for e in errors] == [(code, field)]
    assert issued_key.plaintext not in response.content.decode()
    assert _state() == before


def test_a_body_that_is_not_an_object_is_a_400(reporter, issued_key):
    response = reporter.post(LEAKS, [issued_key.plaintext], format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert error_codes(response) == ["INVALID_REQUEST"]


def test_a_token_without_the_scope_is_403_and_changes_nothing(make_client, issued_key):
    client = make_client([s for s in ALL_SCOPES if s != "report:api_key_leaks"])
    before = _state()
    response = client.post(LEAKS, {"api_key": issued_key.plaintext}, format="json")
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert error_codes(response) == ["INSUFFICIENT_SCOPE"]
    assert "report:api_key_leaks" in response.json()["errors"][0]["message"]
    assert _state() == before


def test_no_token_is_401(issued_key):
    response = APIClient().post(LEAKS, {"api_key": issued_key.plaintext}, format="json")
    assert response.status_code == HTTPStatus.UNAUTHORIZED


def test_leaks_is_not_taken_for_a_key_id(client_all):
    """The route sits before api_keys/<key_id>: a GET is 405, not "no key with id leaks"."""
    response = client_all.get(LEAKS)
    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED


# =========================================================== POST /api/v1/secret_scanning/github


class GitHub:
    """A stand-in for GitHub's secret scanning: its own P-256 key pair, signing bodies."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.pem = (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        self.client = APIClient()

    def sign(self, body: bytes) -> str:
        return base64.b64encode(self.private.sign(body, ec.ECDSA(hashes.SHA256()))).decode()

    def post(
        self,
        body: bytes | list[dict[str, Any]],
        *,
        key_id: str | None = KEY_ID,
        signature: str | None = None,
    ) -> Any:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {}
        if key_id is not None:
            headers["HTTP_GITHUB_PUBLIC_KEY_IDENTIFIER"] = key_id
        signature = self.sign(raw) if signature is None else signature
        if signature:
            headers["HTTP_GITHUB_PUBLIC_KEY_SIGNATURE"] = signature
        return self.client.post(GITHUB, data=raw, content_type="application/json", **headers)


@pytest.fixture
def github(settings) -> GitHub:
    gh = GitHub()
    settings.APIKEYS = {**settings.APIKEYS, "SECRET_SCANNING_PUBLIC_KEYS": {KEY_ID: gh.pem}}
    return gh


def _match(token: str, **extra: Any) -> dict[str, Any]:
    return {
        "token": token,
        "type": TOKEN_TYPE,
        "url": "https://github.com/octocat/hello/blob/abc/.env",
        "source": "content",
        **extra,
    }


def test_a_signed_report_of_a_live_key_revokes_it_and_answers_by_hash(github, verifier, issued_key):
    response = github.post([_match(issued_key.plaintext)])
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json() == [
        {
            "token_hash": crypto.sha256_hex(issued_key.plaintext),
            "token_type": TOKEN_TYPE,
            "label": "true_positive",
        }
    ]
    assert issued_key.plaintext not in response.content.decode()
    assert _verify_code(verifier, issued_key.plaintext) == "API_KEY_REVOKED"
    event = AuditEvent.objects.get(action=AuditEvent.Action.API_KEY_REVOKED)
    assert event.details == {
        "reason": "leaked",
        "url": "https://github.com/octocat/hello/blob/abc/.env",
        "source": "content",
    }
    assert event.actor_label == "GitHub secret scanning"
    assert event.actor_type == AuditEvent.ActorType.SYSTEM


def test_a_batch_of_fifty_mixed_matches_is_answered_in_one_response(
    github, verifier, api, organization, user
):
    live = [_issue(api, organization=organization) for _ in range(10)]
    live += [_issue(api, user=user) for _ in range(10)]
    revoked = [_issue(api, organization=organization) for _ in range(5)]
    for issued in revoked:
        services.api_key_revoke(api_key=issued.api_key, actor=services.Actor.system())
    expired = [
        _issue(api, organization=organization, expires_at=timezone.now() + timedelta(hours=1))
        for _ in range(5)
    ]
    ApiKey.objects.filter(pk__in=[e.api_key.pk for e in expired]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    unknown = [crypto.generate_key() for _ in range(10)]
    malformed = [f"k_live_{i:040d}XXXXXX" for i in range(5)] + [f"ghp_notours{i}" for i in range(5)]
    expected: list[tuple[str, str]] = (
        [(i.plaintext, "true_positive") for i in live]
        + [(i.plaintext, "false_positive") for i in revoked + expired]
        + [(t, "false_positive") for t in unknown + malformed]
    )
    # Interleave true and false positives, so that order is checked, not just grouping.
    expected = expected[::2] + expected[1::2]
    assert len(expected) == 50

    response = github.post([_match(token) for token, _ in expected])

    assert response.status_code == HTTPStatus.OK, response.content
    answer = response.json()
    assert answer == [
        {"token_hash": crypto.sha256_hex(token), "token_type": TOKEN_TYPE, "label": label}
        for token, label in expected
    ]
    text = response.content.decode()
    assert not any(token in text for token, _ in expected)
    for issued in live:
        assert _verify_code(verifier, issued.plaintext) == "API_KEY_REVOKED"
    leaked = AuditEvent.objects.filter(
        action=AuditEvent.Action.API_KEY_REVOKED, details__reason="leaked"
    )
    assert sorted(leaked.values_list("target_id", flat=True)) == sorted(i.api_key.id for i in live)


def test_the_same_token_twice_in_a_batch_is_one_leak_labelled_true_twice(github, issued_key):
    response = github.post(
        [_match(issued_key.plaintext), _match(issued_key.plaintext, source="commit")]
    )
    assert [item["label"] for item in response.json()] == ["true_positive", "true_positive"]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.API_KEY_REVOKED).count() == 1


def test_the_signature_is_over_the_raw_bytes_as_sent(github, issued_key):
    """Whitespace and key order that a re-serialisation would change still verify."""
    raw = (
        b'[ {"url": "https://github.com/o/r",   "type": "acme_api_key",\n'
        b'   "source": "commit", "token": "' + issued_key.plaintext.encode() + b'"} ]'
    )
    response = github.post(raw)
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()[0]["label"] == "true_positive"


SIGNATURE_FAILURES = [
    "no headers",
    "no signature",
    "no identifier",
    "unknown identifier",
    "signed by another key",
    "signature over another body",
    "malformed base64",
    "not a DER signature",
    "no keys configured",
]


@pytest.mark.parametrize("failure", SIGNATURE_FAILURES)
def test_a_bad_or_missing_signature_is_401_and_changes_nothing(
    github, settings, issued_key, failure
):
    body = json.dumps([_match(issued_key.plaintext)]).encode()
    kwargs: dict[str, Any] = {}
    if failure == "no headers":
        kwargs = {"key_id": None, "signature": ""}
    elif failure == "no signature":
        kwargs = {"signature": ""}
    elif failure == "no identifier":
        kwargs = {"key_id": None}
    elif failure == "unknown identifier":
        kwargs = {"key_id": "f" * 64}
    elif failure == "signed by another key":
        kwargs = {"signature": GitHub().sign(body)}
    elif failure == "signature over another body":
        kwargs = {"signature": github.sign(body.replace(b"content", b"commit"))}
    elif failure == "malformed base64":
        kwargs = {"signature": "MEUCIQ%%%not-base64***"}
    elif failure == "not a DER signature":
        kwargs = {"signature": base64.b64encode(b"\x00" * 70).decode()}
    elif failure == "no keys configured":
        settings.APIKEYS = {**settings.APIKEYS, "SECRET_SCANNING_PUBLIC_KEYS": {}}
    before = _state()
    response = github.post(body, **kwargs)
    assert response.status_code == HTTPStatus.UNAUTHORIZED, response.content
    assert error_codes(response)[0] in {"UNAUTHENTICATED", "INVALID_SIGNATURE"}
    assert issued_key.plaintext not in response.content.decode()
    assert crypto.sha256_hex(issued_key.plaintext) not in response.content.decode()
    assert _state() == before


def test_an_unsigned_bad_body_is_401_not_400(github):
    """The signature is checked before the body is parsed: no validation detail leaks."""
    response = github.post(b"{not json", signature="AAAA")
    assert response.status_code == HTTPStatus.UNAUTHORIZED


def test_an_m2m_token_does_not_replace_the_signature(make_client, github, issued_key):
    client = make_client(None)
    response = client.post(
        GITHUB, [_match(issued_key.plaintext)], format="json"
    )  # a token with every scope, no signature
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert ApiKey.objects.get(pk=issued_key.api_key.pk).status == ApiKey.Status.ACTIVE


@pytest.mark.parametrize(
    "body, code",
    [
        ({"token": "x", "type": "t"}, "INVALID_REQUEST"),
        ([{"type": "t"}], "FIELD_REQUIRED"),
        ([{"token": 5, "type": "t"}], "INVALID_FIELD"),
        ([{"token": "x"}], "FIELD_REQUIRED"),
        (["k_live_x"], "INVALID_FIELD"),  # item 0 is not an object
    ],
    ids=["an object", "no token", "token a number", "no type", "a string item"],
)
def test_a_signed_malformed_batch_is_400_and_changes_nothing(github, issued_key, body, code):
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = [_match(issued_key.plaintext), *body]  # a live key first: still nothing changes
    before = _state()
    response = github.post(json.dumps(body).encode())
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert code in error_codes(response)
    assert _state() == before


def test_a_signed_batch_over_the_cap_is_413_and_changes_nothing(github, issued_key):
    from apikeys.api.views.leaks import MAX_GITHUB_BATCH

    body = [_match(issued_key.plaintext)] + [
        {"token": "x", "type": "t"} for _ in range(MAX_GITHUB_BATCH)
    ]
    before = _state()
    response = github.post(body)
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert error_codes(response) == ["BATCH_TOO_LARGE"]
    assert _state() == before


def test_a_body_over_64_kib_is_413_before_anything_else(github, issued_key):
    body = [_match(issued_key.plaintext, url="https://github.com/" + "a" * 70_000)]
    before = _state()
    response = github.post(body)
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert error_codes(response) == ["REQUEST_TOO_LARGE"]
    assert _state() == before


def test_fields_github_may_add_later_are_ignored_and_long_urls_are_clipped(github, issued_key):
    long_url = "https://github.com/o/r/blob/main/" + "d/" * 1500
    response = github.post([_match(issued_key.plaintext, url=long_url, repository="o/r")])
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()[0]["label"] == "true_positive"
    details = AuditEvent.objects.get(action=AuditEvent.Action.API_KEY_REVOKED).details
    assert details["url"] == long_url[:2048]


def test_an_unknown_query_parameter_is_400_once_signed_and_401_before(github, issued_key):
    raw = json.dumps([_match(issued_key.plaintext)]).encode()
    signed = {
        "HTTP_GITHUB_PUBLIC_KEY_IDENTIFIER": KEY_ID,
        "HTTP_GITHUB_PUBLIC_KEY_SIGNATURE": github.sign(raw),
    }
    before = _state()
    unsigned = github.client.post(f"{GITHUB}?statuz=1", data=raw, content_type="application/json")
    assert unsigned.status_code == HTTPStatus.UNAUTHORIZED
    response = github.client.post(
        f"{GITHUB}?statuz=1", data=raw, content_type="application/json", **signed
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert error_codes(response) == ["UNKNOWN_PARAMETER"]
    assert _state() == before


def test_an_empty_batch_is_an_empty_answer(github):
    response = github.post([])
    assert response.status_code == HTTPStatus.OK
    assert response.json() == []


def test_github_reports_need_no_csrf_token(github, issued_key):
    github.client = APIClient(enforce_csrf_checks=True)
    response = github.post([_match(issued_key.plaintext)])
    assert response.status_code == HTTPStatus.OK


# =========================================================== logs


def test_no_key_or_token_reaches_the_logs(caplog, github, reporter, issued_key, api, user):
    other = _issue(api, user=user)
    unknown = crypto.generate_key()
    with caplog.at_level(logging.DEBUG):
        reporter.post(LEAKS, {"api_key": issued_key.plaintext, "url": "u"}, format="json")
        reporter.post(LEAKS, {"api_key": unknown}, format="json")
        reporter.post(LEAKS, {"api_key": issued_key.plaintext, "nope": 1}, format="json")
        github.post([_match(other.plaintext), _match(unknown)])
        github.post([_match(other.plaintext)], signature="AAAA")
        github.post([_match(other.plaintext)], key_id="unknown")
    assert caplog.records, "the doors log what they do (a revocation, a refused signature)"
    logged = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records
    )
    for secret in (issued_key.plaintext, other.plaintext, unknown):
        assert secret not in logged
        assert secret[12:-4] not in logged
    assert issued_key.api_key.id in logged  # the revocation is logged by key id
