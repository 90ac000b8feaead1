"""Fixtures for the Management API: real M2M applications and real tokens from /oauth2/token."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from apikeys import tokencache
from apikeys.models import MANAGEMENT_SCOPES

ALL_SCOPES = sorted(MANAGEMENT_SCOPES)


def fetch_token(client_id: str, client_secret: str, **extra: str) -> Any:
    """POST /oauth2/token with the client-credentials grant, as a service would."""
    return APIClient().post(
        "/oauth2/token",
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            **extra,
        },
    )


@pytest.fixture
def client_all(make_client) -> APIClient:
    """A token with every Management API scope."""
    return make_client(None, name="Platform backend")


def error_codes(response: Any) -> list[str]:
    body = response.json()
    assert set(body) == {"errors"}, body
    return [e["code"] for e in body["errors"]]


def warm_token_queries() -> int:
    """Queries the Management API spends on a token it has already accepted: none with the
    M2M token cache (Redis as the default cache, ``apikeys.tokencache``), one without."""
    return 0 if tokencache.enabled() else 1
