"""The Management API's door, before any view runs: how a body is read (chunked or not, how
deep, with repeated keys), unknown routes and hosts, unknown query parameters."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from rest_framework.test import APIClient

from tests.api.conftest import error_codes

pytestmark = pytest.mark.django_db


# ------------------------------------------------------------------ unknown routes


@pytest.mark.parametrize(
    "method, path",
    [
        ("post", "/api/v1/api_keys/verify/extra"),
        ("put", "/api/v1/nowhere"),
        ("patch", "/api/v1/nowhere"),
        ("delete", "/api/v1/apis/x/y/z/w"),
        ("post", "/api/v1/"),
    ],
)
def test_an_unsafe_method_on_an_unknown_route_is_the_json_404_not_a_csrf_page(
    method: str, path: str
) -> None:
    # CSRF enforced, as Django's middleware does for real requests (the test client skips
    # it unless told otherwise), and a cookie, as a browser would send.
    client = APIClient(enforce_csrf_checks=True)
    client.cookies["sessionid"] = "whatever"
    response = getattr(client, method)(path, {"a": 1}, format="json")
    assert response.status_code == HTTPStatus.NOT_FOUND, response.content
    assert response["Content-Type"] == "application/json"
    assert error_codes(response) == ["ROUTE_NOT_FOUND"]
