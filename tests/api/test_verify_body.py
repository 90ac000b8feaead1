"""The verify endpoint's hot path reads its body without building the serializer
(``ApiKeyVerifyIn.plainly_valid``) and answers without one (``verification_answer``):
both must say exactly what the serializers say, and leave everything else to them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rest_framework import serializers

from apikeys.api.serializers import ApiKeyVerifyIn, VerificationOut, verification_answer
from apikeys.api.views._common import validated
from apikeys.services import Verification

KEY = "k_live_abc"

PLAINLY_VALID: list[Any] = [
    {"api_key": KEY},
    {"api_key": " spaces kept "},
    {"api_key": "\x00nul is a key's business"},
    {"api_key": KEY, "audience": "https://api.example.com"},
    {"api_key": KEY, "audience": None},
    {"api_key": KEY, "cost": 0},
    {"api_key": KEY, "cost": 1000},
    {"api_key": KEY, "audience": "a", "cost": 7},
]

INVALID: list[Any] = [
    [],
    "k_live_abc",
    None,
    {},
    {"api_key": ""},
    {"api_key": None},
    {"api_key": 1},
    {"api_key": True},
    {"api_key": ["k"]},
    {"api_key": KEY, "audience": ""},
    {"api_key": KEY, "audience": 5},
    {"api_key": KEY, "audience": "a\x00b"},
    {"api_key": KEY, "cost": -1},
    {"api_key": KEY, "cost": 1001},
    {"api_key": KEY, "cost": True},
    {"api_key": KEY, "cost": 1.0},
    {"api_key": KEY, "cost": "1"},
    {"api_key": KEY, "cost": None},
    {"api_key": KEY, "unknown": 1},
]


@pytest.mark.parametrize("body", PLAINLY_VALID)
def test_a_plainly_valid_body_reads_as_the_serializer_reads_it(body: Any) -> None:
    fast = ApiKeyVerifyIn.plainly_valid(body)
    assert fast is not None
    assert fast == validated(ApiKeyVerifyIn, body)
    assert fast is not body  # a copy: the view may not change the request's data


@pytest.mark.parametrize("body", INVALID)
def test_every_invalid_body_is_left_to_the_serializer_which_refuses_it(body: Any) -> None:
    assert ApiKeyVerifyIn.plainly_valid(body) is None
    with pytest.raises(serializers.ValidationError):
        validated(ApiKeyVerifyIn, body)


def test_a_body_the_hot_path_does_not_know_is_left_to_the_serializer() -> None:
    # A dict subclass (a parser's own mapping type) is not assumed to behave as a dict.
    class Mapping(dict):  # type: ignore[type-arg]
        pass

    body = Mapping(api_key=KEY)
    assert ApiKeyVerifyIn.plainly_valid(body) is None
    assert validated(ApiKeyVerifyIn, body) == {"api_key": KEY}


@pytest.mark.parametrize(
    "result",
    [
        Verification(code=Verification.INVALID),
        Verification(code=Verification.REVOKED, key_id="k1", status="revoked"),
        Verification(
            code=Verification.VERIFIED,
            key_id="k1",
            status="active",
            scopes=("read:users", "write:users"),
            org_code="org_1",
            api_id="api_1",
            audience="https://api.example.com",
            expires_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
            last_verified_on=datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC),
            verification_count=42,
        ),
        Verification(
            code=Verification.RATE_LIMITED,
            key_id="k1",
            user_id="kp_1",
            ratelimit={"limit": 10, "remaining": 0, "reset": datetime(2026, 12, 1, tzinfo=UTC)},
            credits_remaining=5,
        ),
    ],
)
def test_the_direct_answer_is_the_serializers_answer(result: Verification) -> None:
    assert verification_answer(result) == VerificationOut(result).data
