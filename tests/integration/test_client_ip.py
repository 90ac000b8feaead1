"""``apikeys.http.client_ip``: the caller's IP, from a trusted proxy only when configured."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import RequestFactory
from rest_framework.request import Request

from apikeys.http import client_ip


def _request(remote_addr: str = "192.0.2.1", forwarded: str | None = None):
    meta: dict[str, Any] = {"REMOTE_ADDR": remote_addr}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **meta)


@pytest.fixture
def trust_proxy(settings):
    settings.APIKEYS = {**settings.APIKEYS, "TRUST_X_FORWARDED_FOR": True}


def test_without_a_trusted_proxy_the_forwarded_header_is_ignored():
    assert client_ip(_request("192.0.2.1", forwarded="203.0.113.5")) == "192.0.2.1"


@pytest.mark.parametrize(
    "forwarded, expected",
    [
        ("203.0.113.5", "203.0.113.5"),
        # Only the last entry was written by our proxy; the first ones come from the client.
        ("6.6.6.6, 203.0.113.5", "203.0.113.5"),
        ("6.6.6.6,203.0.113.5 ", "203.0.113.5"),
        ("2001:DB8::1", "2001:db8::1"),
        # Not an address: fall back to the socket's peer rather than record garbage.
        ("203.0.113.5, unknown", "192.0.2.1"),
        ("", "192.0.2.1"),
    ],
)
def test_behind_a_trusted_proxy_its_last_entry_is_the_callers_ip(trust_proxy, forwarded, expected):
    assert client_ip(_request("192.0.2.1", forwarded=forwarded)) == expected


def test_a_missing_or_odd_remote_addr_gives_none():
    assert client_ip(_request("")) is None
    assert client_ip(_request("not-an-ip")) is None


def test_a_drf_request_works_as_well_as_a_django_one(trust_proxy):
    drf_request = Request(_request("192.0.2.1", forwarded="203.0.113.5"))

    assert client_ip(drf_request) == "203.0.113.5"


def test_addresses_are_parsed_once_and_a_forged_long_value_is_never_kept(trust_proxy):
    from apikeys import http

    http._cached_ip.cache_clear()
    for _ in range(3):
        assert client_ip(_request("192.0.2.1", forwarded=" 2001:DB8::7")) == "2001:db8::7"
    assert http._cached_ip.cache_info().hits >= 2
    kept = http._cached_ip.cache_info().currsize
    forged = "1" * 10_000
    assert client_ip(_request("192.0.2.1", forwarded=forged)) == "192.0.2.1"
    assert http.normalised_ip(" " * 70 + "192.0.2.9") == "192.0.2.9"  # parsed all the same
    assert http._cached_ip.cache_info().currsize == kept + 1  # REMOTE_ADDR only
