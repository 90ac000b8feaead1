"""``/`` is a page that says what is served here (issue 14, item 5)."""

from __future__ import annotations

from http import HTTPStatus

import pytest


@pytest.mark.django_db
def test_the_front_page_links_the_portal_the_admin_and_the_api_reference(client):
    response = client.get("/")
    assert response.status_code == HTTPStatus.OK
    body = response.content.decode()
    for href in (
        'href="/portal/login/"',
        'href="/admin/"',
        'href="/api/docs/"',
        'href="/api/schema/"',
    ):
        assert href in body
    assert "Content-Security-Policy" in response.headers
