"""Hypothesis on the portal's forms: whatever a browser (or a script) posts to sign-in,
create, rotate, revoke and portal-link pages, the portal answers with a page, never a 5xx,
and changes something only when the input is valid for this user.

- create: a key appears only for a name of 1 to 128 characters, an existing API and scopes
  of that API only, owned by the signed-in user; it appears exactly once per valid POST;
- rotate: only one of the offered grace periods is accepted;
- sign-in: arbitrary names and passwords never sign anyone in;
- portal links: arbitrary tokens never sign anyone in.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apikeys.models import ApiKey
from portal.forms import GRACE_CHOICES
from tests.factories import UserFactory
from tests.portal.helpers import grant_form_token
from tests.security.conftest import World

pytestmark = pytest.mark.django_db

FORM_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TEXT = st.text(max_size=140)
FIELD_VALUES = TEXT | st.integers().map(str) | st.just("")


def _no_server_error(response: Any) -> None:
    assert response.status_code < 500, response.status_code


@pytest.fixture
def signed_in(world: World) -> Client:
    client = Client()
    client.force_login(world.user)
    return client


@FORM_SETTINGS
@given(data=st.data())
def test_the_create_form_makes_a_key_only_from_valid_input(
    signed_in: Client, world: World, data: Any
) -> None:
    other_api_scope = world.foreign_scope
    name = data.draw(TEXT, label="name")
    api = data.draw(
        st.sampled_from([world.api.id, world.foreign_scope.api_id, "", "0" * 32]) | TEXT,
        label="api",
    )
    scopes = data.draw(
        st.lists(
            st.sampled_from([s.id for s in world.scopes] + [other_api_scope.id]) | TEXT, max_size=3
        ),
        label="scopes",
    )
    before = set(ApiKey.objects.values_list("id", flat=True))
    response = signed_in.post(
        "/portal/keys/new/",
        {"name": name, "api": api, "scopes": scopes, "form_token": grant_form_token(signed_in)},
    )
    _no_server_error(response)
    made = ApiKey.objects.exclude(id__in=before)
    scopes_of = {
        world.api.id: {s.id for s in world.scopes},
        other_api_scope.api_id: {other_api_scope.id},
    }
    valid = (
        0 < len(name.strip()) <= 128
        and "\x00" not in name
        and api in scopes_of
        and set(scopes) <= scopes_of[api]
    )
    if valid:
        assert response.status_code == HTTPStatus.OK
        key = made.get()
        assert key.user_id == world.user.pk and key.organization_id is None
        assert set(key.scopes.values_list("id", flat=True)) == set(scopes)
        assert response["Cache-Control"].count("no-store") == 1
    else:
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert not made.exists()


@FORM_SETTINGS
@given(grace=FIELD_VALUES | st.sampled_from([str(s) for s, _ in GRACE_CHOICES]))
def test_the_rotate_form_accepts_only_an_offered_grace_period(
    signed_in: Client, world: World, grace: str
) -> None:
    key = world.keys[1].api_key  # the user's own key
    before = ApiKey.objects.get(pk=key.pk).digest
    response = signed_in.post(
        f"/portal/keys/{key.pk}/rotate/",
        {"grace_seconds": grace, "form_token": grant_form_token(signed_in)},
    )
    _no_server_error(response)
    rotated = ApiKey.objects.get(pk=key.pk).digest != before
    offered = {str(seconds) for seconds, _ in GRACE_CHOICES}
    assert rotated == (grace in offered), (grace, response.status_code)


@FORM_SETTINGS
@given(username=FIELD_VALUES, password=FIELD_VALUES)
def test_arbitrary_credentials_never_sign_anyone_in(
    world: World, username: str, password: str
) -> None:
    client = Client()
    response = client.post("/portal/login/", {"username": username, "password": password})
    _no_server_error(response)
    assert response.status_code in (HTTPStatus.OK, HTTPStatus.TOO_MANY_REQUESTS)
    assert "_auth_user_id" not in client.session


@FORM_SETTINGS
@given(
    token=st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/?#"),
        min_size=1,
        max_size=80,
    )
)
def test_arbitrary_portal_link_tokens_never_sign_anyone_in(world: World, token: str) -> None:
    from urllib.parse import quote

    client = Client()
    for method in (client.get, client.post):
        response = method(f"/portal/link/{quote(token, safe='')}/")
        _no_server_error(response)
        assert "_auth_user_id" not in client.session


@FORM_SETTINGS
@given(key_id=TEXT)
def test_any_key_id_in_a_portal_url_is_a_page_never_a_crash(signed_in: Client, key_id: str) -> None:
    from urllib.parse import quote

    for suffix in ("", "rotate/", "revoke/"):
        response = signed_in.get(f"/portal/keys/{quote(key_id, safe='')}/{suffix}")
        _no_server_error(response)
    response = signed_in.post(f"/portal/keys/{quote(key_id, safe='')}/revoke/")
    _no_server_error(response)
    assert ApiKey.objects.filter(status=ApiKey.Status.REVOKED).count() == 0


def test_an_outsiders_post_changes_nothing(world: World) -> None:
    outsider = Client()
    outsider.force_login(UserFactory())
    key = world.keys[1].api_key
    for path in (f"/portal/keys/{key.pk}/rotate/", f"/portal/keys/{key.pk}/revoke/"):
        response = outsider.post(
            path, {"grace_seconds": "0", "form_token": grant_form_token(outsider)}
        )
        assert response.status_code == HTTPStatus.NOT_FOUND
    assert ApiKey.objects.get(pk=key.pk).status == ApiKey.Status.ACTIVE
