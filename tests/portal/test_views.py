"""The portal's pages through Django's test client: sign-in and its throttle, portal links,
the key pages, where a new secret may and may not appear, the self-serve switches, security
headers and the key list's query count."""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apikeys import services
from apikeys.models import ApiKey, AuditEvent
from portal.models import PortalLink, SelfServeSettings
from portal.services import portal_link_create
from portal.views import RETURN_URL_SESSION_KEY
from tests.factories import ApiFactory, OrganizationFactory, ScopeFactory, UserFactory
from tests.limiter import break_limiter
from tests.portal.helpers import PASSWORD, grant_form_token, issue, member_of

LOGIN = "/portal/login/"


def fresh_ip() -> str:
    """A client address no other test uses: the login throttle counts per IP, in a cache
    (Redis in CI) that outlives one test."""
    return f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"


def message_codes(response: Any) -> list[str]:
    return [m.extra_tags for m in get_messages(response.wsgi_request)]


def link_path(user: Any, **options: Any) -> str:
    url = portal_link_create(
        user=user, base_url="http://testserver", actor=services.Actor.system(), **options
    )
    return urlsplit(url).path


def switch(**values: bool) -> None:
    SelfServeSettings.load()
    SelfServeSettings.objects.update(**values)


def all_database_text() -> str:
    """Every row of every table, as text: to prove a secret is stored nowhere."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            chunks.append(repr(cursor.fetchall()))
    return "\n".join(chunks)


# --------------------------------------------------------------------------- sign-in


@pytest.mark.django_db
def test_the_sign_in_page_has_a_csrf_protected_form(client):
    response = client.get(LOGIN)
    assert response.status_code == HTTPStatus.OK
    assert b'name="csrfmiddlewaretoken"' in response.content
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_a_correct_password_signs_in_and_lands_on_the_portal(client):
    user = UserFactory(password=PASSWORD)
    response = client.post(
        LOGIN, {"username": user.username, "password": PASSWORD}, REMOTE_ADDR=fresh_ip()
    )
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/portal/"
    assert client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db
def test_passwords_are_hashed_with_argon2(db):
    assert UserFactory(password=PASSWORD).password.startswith("argon2")


@pytest.mark.django_db
def test_a_wrong_password_is_refused(client):
    user = UserFactory(password=PASSWORD)
    response = client.post(
        LOGIN, {"username": user.username, "password": "nope"}, REMOTE_ADDR=fresh_ip()
    )
    assert response.status_code == HTTPStatus.OK
    assert response.context["form"].errors["__all__"][0]
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_an_unsafe_next_url_is_ignored_after_sign_in(client):
    user = UserFactory(password=PASSWORD)
    response = client.post(
        f"{LOGIN}?next=https://evil.example.net/",
        {"username": user.username, "password": PASSWORD, "next": "https://evil.example.net/"},
        REMOTE_ADDR=fresh_ip(),
    )
    assert response["Location"] == "/portal/"


def assert_throttled(response: Any) -> None:
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert int(response["Retry-After"]) > 0
    assert response.context["form"].errors.as_data()["__all__"][0].code == "throttled"


@pytest.mark.django_db
def test_repeated_failures_lock_the_account_from_that_ip_even_for_the_right_password(
    client, settings
):
    settings.APIKEYS = {**settings.APIKEYS, "PORTAL_LOGIN_MAX_FAILURES": 3}
    user = UserFactory(password=PASSWORD)
    ip = fresh_ip()
    for _ in range(3):
        response = client.post(
            LOGIN, {"username": user.username, "password": "guess"}, REMOTE_ADDR=ip
        )
        assert response.status_code == HTTPStatus.OK
    for password in ("guess", PASSWORD):
        assert_throttled(
            client.post(LOGIN, {"username": user.username, "password": password}, REMOTE_ADDR=ip)
        )
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_stranger_failing_under_a_customers_name_does_not_lock_the_customer_out(client, settings):
    """The pair (account, IP) is locked first: someone who fails under a customer's email
    from their own address locks only themselves out."""
    settings.APIKEYS = {**settings.APIKEYS, "PORTAL_LOGIN_MAX_FAILURES": 3}
    user = UserFactory(password=PASSWORD)
    stranger = fresh_ip()
    for _ in range(4):
        client.post(LOGIN, {"username": user.username, "password": "guess"}, REMOTE_ADDR=stranger)
    assert_throttled(
        client.post(LOGIN, {"username": user.username, "password": PASSWORD}, REMOTE_ADDR=stranger)
    )
    response = client.post(
        LOGIN, {"username": user.username, "password": PASSWORD}, REMOTE_ADDR=fresh_ip()
    )
    assert response.status_code == HTTPStatus.FOUND
    assert client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db
def test_failures_spread_over_many_ips_lock_the_account_at_its_own_limit(client, settings):
    settings.APIKEYS = {**settings.APIKEYS, "PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT": 4}
    user = UserFactory(password=PASSWORD)
    for _ in range(4):
        response = client.post(
            LOGIN, {"username": user.username, "password": "guess"}, REMOTE_ADDR=fresh_ip()
        )
        assert response.status_code == HTTPStatus.OK
    assert_throttled(
        client.post(
            LOGIN, {"username": user.username, "password": PASSWORD}, REMOTE_ADDR=fresh_ip()
        )
    )
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_correct_password_clears_the_pair_count(client, settings):
    settings.APIKEYS = {**settings.APIKEYS, "PORTAL_LOGIN_MAX_FAILURES": 3}
    user = UserFactory(password=PASSWORD)
    ip = fresh_ip()
    for _ in range(2):
        client.post(LOGIN, {"username": user.username, "password": "guess"}, REMOTE_ADDR=ip)
    client.post(LOGIN, {"username": user.username, "password": PASSWORD}, REMOTE_ADDR=ip)
    client.logout()
    for _ in range(2):
        response = client.post(
            LOGIN, {"username": user.username, "password": "guess"}, REMOTE_ADDR=ip
        )
        assert response.status_code == HTTPStatus.OK
    response = client.post(LOGIN, {"username": user.username, "password": PASSWORD}, REMOTE_ADDR=ip)
    assert response.status_code == HTTPStatus.FOUND


@pytest.mark.django_db
def test_one_ip_trying_many_account_names_is_locked_out(client, settings):
    settings.APIKEYS = {**settings.APIKEYS, "PORTAL_LOGIN_MAX_FAILURES_PER_IP": 4}
    ip = fresh_ip()
    for n in range(4):
        client.post(
            LOGIN, {"username": f"nobody{n}-{ip}@example.com", "password": "x"}, REMOTE_ADDR=ip
        )
    user = UserFactory(password=PASSWORD)
    response = client.post(LOGIN, {"username": user.username, "password": PASSWORD}, REMOTE_ADDR=ip)
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    # The same account from elsewhere is not locked: the IP was.
    response = client.post(
        LOGIN, {"username": user.username, "password": PASSWORD}, REMOTE_ADDR=fresh_ip()
    )
    assert response.status_code == HTTPStatus.FOUND


@pytest.mark.django_db
def test_sign_out_is_post_only(client):
    client.force_login(UserFactory())
    assert client.get("/portal/logout/").status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert "_auth_user_id" in client.session
    response = client.post("/portal/logout/")
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == LOGIN
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/portal/", "/portal/keys/", "/portal/keys/new/", "/portal/orgs/org_x/keys/"]
)
def test_pages_need_a_signed_in_user(client, path):
    response = client.get(path)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(f"{LOGIN}?next=")


# --------------------------------------------------------------------------- portal links


@pytest.mark.django_db
def test_opening_a_link_shows_who_it_signs_in_and_uses_nothing(client, user):
    path = link_path(user)
    response = client.get(path)
    assert response.status_code == HTTPStatus.OK
    assert user.email in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "no-referrer"
    assert PortalLink.objects.get().used_at is None
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_confirming_a_link_signs_in_and_opens_the_users_keys(client, user):
    response = client.post(link_path(user, sub_nav="user_api_keys"))
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("portal:user-keys")
    assert client.session["_auth_user_id"] == str(user.pk)
    assert PortalLink.objects.get().used_at is not None


@pytest.mark.django_db
def test_a_link_to_organization_keys_opens_that_organizations_page(client, writer, acme):
    response = client.post(link_path(writer, organization=acme, sub_nav="organization_api_keys"))
    assert response["Location"] == reverse("portal:org-keys", kwargs={"org_code": acme.code})
    assert client.get(response["Location"]).status_code == HTTPStatus.OK


@pytest.mark.django_db
def test_the_return_url_becomes_a_back_to_app_link(client, user, return_hosts):
    client.post(link_path(user, return_url="https://app.example.com/settings?x=1&y=2"))
    page = client.get(reverse("portal:user-keys")).content.decode()
    assert 'href="https://app.example.com/settings?x=1&amp;y=2"' in page
    assert 'data-testid="back-to-app"' in page


@pytest.mark.django_db
def test_without_a_return_url_there_is_no_back_to_app_link(client, user):
    client.post(link_path(user))
    assert b"back-to-app" not in client.get(reverse("portal:user-keys")).content


@pytest.mark.django_db
def test_confirming_a_link_needs_the_csrf_token_of_its_page(user):
    strict = Client(enforce_csrf_checks=True)
    path = link_path(user)
    assert strict.post(path).status_code == HTTPStatus.FORBIDDEN
    assert PortalLink.objects.get().used_at is None
    page = strict.get(path)
    token = page.context["csrf_token"]
    assert strict.post(path, {"csrfmiddlewaretoken": str(token)}).status_code == HTTPStatus.FOUND


@pytest.mark.django_db
def test_a_link_sign_in_gets_a_new_session(client, user):
    session = client.session
    session["visited"] = True
    session.save()
    before = session.session_key
    client.post(link_path(user))
    assert client.session.session_key != before
    assert client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db
def test_a_link_for_another_user_replaces_the_signed_in_one(client, user, return_hosts):
    other = UserFactory()
    client.post(link_path(other, return_url="https://app.example.com/"))
    page = client.get(link_path(user))
    assert page.context["switching_account"] is True
    client.post(page.wsgi_request.path)
    assert client.session["_auth_user_id"] == str(user.pk)
    assert RETURN_URL_SESSION_KEY not in client.session


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_used_link_lands_on_sign_in_with_a_message(client, user, method):
    path = link_path(user)
    Client().post(path)
    response = getattr(client, method)(path)
    assert (response.status_code, response["Location"]) == (HTTPStatus.FOUND, LOGIN)
    assert message_codes(response) == ["PORTAL_LINK_USED"]
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_an_expired_link_lands_on_sign_in_with_a_message(client, user, method):
    path = link_path(user)
    PortalLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = getattr(client, method)(path)
    assert response["Location"] == LOGIN
    assert message_codes(response) == ["PORTAL_LINK_EXPIRED"]
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_tampered_link_lands_on_sign_in_with_a_message(client, user, method):
    path = link_path(user)
    token = path.split("/")[-2]
    tampered = path.replace(token, token[::-1])
    response = getattr(client, method)(tampered)
    assert response["Location"] == LOGIN
    assert message_codes(response) == ["PORTAL_LINK_INVALID"]
    follow = client.get(LOGIN)
    assert b'data-testid="login-message"' in follow.content


# --------------------------------------------------------------------------- the pages


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_key_list_shows_each_column_of_the_users_own_keys_only(
    signed_in, user, api, read_users, acme
):
    mine = issue(api=api, name="Mine", scopes=("read:users",), user=user).api_key
    services.api_key_verify(key=issue(api=api, name="Counted", user=user).plaintext)
    theirs = issue(api=api, name="Theirs", user=UserFactory()).api_key
    org_key = issue(api=api, name="Org", organization=acme).api_key
    page = signed_in.get("/portal/keys/").content.decode()
    assert f'data-key-id="{mine.id}"' in page
    for text in ("Mine", api.name, "read:users", "Active", f"{mine.key_prefix}…{mine.key_suffix}"):
        assert text in page
    assert f'data-key-id="{theirs.id}"' not in page and f'data-key-id="{org_key.id}"' not in page
    counted = ApiKey.objects.get(name="Counted")
    assert counted.verification_count == 1


@pytest.mark.django_db
def test_key_names_are_escaped(signed_in, user, api):
    issue(api=api, name="<script>alert(1)</script>", user=user)
    page = signed_in.get("/portal/keys/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.django_db
def test_creating_a_key_shows_its_secret_once_and_stores_it_nowhere(
    signed_in, user, api, read_users, caplog
):
    caplog.set_level(logging.DEBUG)
    token = grant_form_token(signed_in)
    with CaptureQueriesContext(connection) as queries:
        response = signed_in.post(
            "/portal/keys/new/",
            {"name": "Billing", "api": api.pk, "scopes": [read_users.pk], "form_token": token},
        )
    assert response.status_code == HTTPStatus.OK
    secret = response.context["secret"]
    assert secret.startswith("k_live_") and secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]

    key = ApiKey.objects.get(name="Billing")
    assert (key.user, key.scope_list) == (user, ["read:users"])
    assert services.api_key_verify(key=secret).is_valid
    event = AuditEvent.objects.get(action=AuditEvent.Action.API_KEY_ISSUED, target_id=key.id)
    assert (event.actor_user, event.ip) == (user, "127.0.0.1")

    # Nowhere else: not the session, messages, database, SQL, logs, headers or a URL.
    assert secret not in repr(dict(signed_in.session.items()))
    assert not list(get_messages(response.wsgi_request))
    assert secret not in all_database_text()
    assert not any(secret in q["sql"] for q in queries)
    assert secret not in caplog.text
    assert not any(secret in value for value in response.headers.values())
    assert secret not in response.wsgi_request.get_full_path()


@pytest.mark.django_db
def test_a_scope_of_another_api_is_refused(signed_in, user, api, read_users):
    foreign = ScopeFactory(api=ApiFactory(), key="read:invoices")
    response = signed_in.post(
        "/portal/keys/new/",
        {
            "name": "Mixed",
            "api": api.pk,
            "scopes": [read_users.pk, foreign.pk],
            "form_token": grant_form_token(signed_in),
        },
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.context["form"].errors.as_data()["scopes"][0].code == "SCOPE_NOT_FOUND"
    assert "secret" not in response.context
    assert not ApiKey.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.API_KEY_ISSUED).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data",
    [
        {"name": "", "api": "API"},
        {"name": "x" * 129, "api": "API"},
        {"name": "No API"},
        {"name": "Bad API", "api": "f" * 32},
    ],
)
def test_a_bad_create_form_is_refused(signed_in, api, data):
    data = {**data, "form_token": grant_form_token(signed_in)}
    if data.get("api") == "API":
        data["api"] = api.pk
    response = signed_in.post("/portal/keys/new/", data)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_sending_the_create_form_again_makes_no_second_key(signed_in, api):
    data = {"name": "Once", "api": api.pk, "form_token": grant_form_token(signed_in)}
    assert signed_in.post("/portal/keys/new/", data).status_code == HTTPStatus.OK
    again = signed_in.post("/portal/keys/new/", data)
    assert (again.status_code, again["Location"]) == (HTTPStatus.FOUND, "/portal/keys/")
    assert ApiKey.objects.count() == 1
    assert (
        signed_in.post("/portal/keys/new/", {"name": "No token", "api": api.pk}).status_code
        == HTTPStatus.FOUND
    )
    assert ApiKey.objects.count() == 1


@pytest.mark.django_db
def test_the_create_form_hands_out_a_token_that_works_once(signed_in, api):
    form_page = signed_in.get("/portal/keys/new/")
    token = form_page.context["form_token"]
    assert f'value="{token}"' in form_page.content.decode()
    data = {"name": "Via page", "api": api.pk, "form_token": token}
    assert signed_in.post("/portal/keys/new/", data).status_code == HTTPStatus.OK
    assert signed_in.post("/portal/keys/new/", data).status_code == HTTPStatus.FOUND
    assert ApiKey.objects.count() == 1


@pytest.mark.django_db
def test_rotating_with_a_grace_period_keeps_the_old_secret_working_for_a_while(
    signed_in, user, api
):
    issued = issue(api=api, user=user)
    response = signed_in.post(
        f"/portal/keys/{issued.api_key.id}/rotate/",
        {"grace_seconds": "3600", "form_token": grant_form_token(signed_in)},
    )
    assert response.status_code == HTTPStatus.OK and "no-store" in response["Cache-Control"]
    new_secret = response.context["secret"]
    assert new_secret != issued.plaintext
    assert services.api_key_verify(key=issued.plaintext).is_valid
    assert services.api_key_verify(key=new_secret).is_valid
    key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert (
        timezone.now() + timedelta(minutes=59)
        < key.previous_expires_at
        <= timezone.now() + timedelta(hours=1)
    )
    assert AuditEvent.objects.get(action=AuditEvent.Action.API_KEY_ROTATED).actor_user == user


@pytest.mark.django_db
def test_rotating_immediately_kills_the_old_secret(signed_in, user, api):
    issued = issue(api=api, user=user)
    response = signed_in.post(
        f"/portal/keys/{issued.api_key.id}/rotate/",
        {"grace_seconds": "0", "form_token": grant_form_token(signed_in)},
    )
    assert services.api_key_verify(key=issued.plaintext).code == "API_KEY_INVALID"
    assert services.api_key_verify(key=response.context["secret"]).is_valid


@pytest.mark.django_db
def test_a_grace_period_longer_than_the_platform_allows_is_neither_offered_nor_accepted(
    signed_in, user, api, settings
):
    settings.APIKEYS = {**settings.APIKEYS, "MAX_ROTATION_GRACE_SECONDS": 3600}
    issued = issue(api=api, user=user)
    form = signed_in.get(f"/portal/keys/{issued.api_key.id}/rotate/").context["form"]
    assert [c[0] for c in form.fields["grace_seconds"].choices] == [0, 3600]
    response = signed_in.post(
        f"/portal/keys/{issued.api_key.id}/rotate/",
        {"grace_seconds": str(24 * 3600), "form_token": grant_form_token(signed_in)},
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert ApiKey.objects.get(pk=issued.api_key.pk).digest == issued.api_key.digest


@pytest.mark.django_db
def test_a_revoked_key_cannot_be_rotated(signed_in, user, api):
    issued = issue(api=api, user=user)
    services.api_key_revoke(api_key=issued.api_key, actor=services.Actor.system())
    digest = ApiKey.objects.get(pk=issued.api_key.pk).digest
    response = signed_in.post(
        f"/portal/keys/{issued.api_key.id}/rotate/",
        {"grace_seconds": "0", "form_token": grant_form_token(signed_in)},
    )
    assert (response.status_code, response["Location"]) == (
        HTTPStatus.FOUND,
        f"/portal/keys/{issued.api_key.id}/",
    )
    assert ApiKey.objects.get(pk=issued.api_key.pk).digest == digest
    assert (
        signed_in.get(f"/portal/keys/{issued.api_key.id}/rotate/").status_code == HTTPStatus.FOUND
    )


@pytest.mark.django_db
def test_revoking_redirects_to_the_key_and_it_stops_verifying(signed_in, user, api):
    issued = issue(api=api, user=user)
    response = signed_in.post(f"/portal/keys/{issued.api_key.id}/revoke/")
    assert (response.status_code, response["Location"]) == (
        HTTPStatus.FOUND,
        f"/portal/keys/{issued.api_key.id}/",
    )
    assert services.api_key_verify(key=issued.plaintext).code == "API_KEY_REVOKED"
    assert AuditEvent.objects.get(action=AuditEvent.Action.API_KEY_REVOKED).actor_user == user
    detail = signed_in.get(response["Location"]).content.decode()
    assert "Revoked" in detail and 'data-testid="revoke"' not in detail


@pytest.mark.django_db
def test_confirmation_pages_change_nothing(signed_in, user, api):
    issued = issue(api=api, user=user)
    for action in ("rotate", "revoke"):
        assert (
            signed_in.get(f"/portal/keys/{issued.api_key.id}/{action}/").status_code
            == HTTPStatus.OK
        )
    row = ApiKey.objects.get(pk=issued.api_key.pk)
    assert (row.digest, row.status) == (issued.api_key.digest, "active")
    assert AuditEvent.objects.filter(target_id=row.id).count() == 1  # the issue only


@pytest.mark.django_db
def test_unknown_portal_paths_and_key_ids_are_portal_404_pages(signed_in):
    for path in (
        "/portal/nope/",
        "/portal/keys/api_key_00000000000000000000000000000000/",
        "/portal/keys/%3Cx%3E/",
    ):
        response = signed_in.get(path)
        assert response.status_code == HTTPStatus.NOT_FOUND
        assert b'data-testid="not-found"' in response.content


# --------------------------------------------------------------------------- self-serve switches


@pytest.mark.django_db
def test_with_user_keys_off_the_user_pages_are_gone_and_refuse_actions(signed_in, user, api):
    issued = issue(api=api, user=user)
    switch(user_keys_enabled=False)
    for path in ("/portal/keys/", "/portal/keys/new/", f"/portal/keys/{issued.api_key.id}/"):
        response = signed_in.get(path)
        assert response.status_code == HTTPStatus.NOT_FOUND
        assert b'data-testid="self-serve-off"' in response.content
    response = signed_in.post(
        "/portal/keys/new/", {"name": "x", "api": api.pk, "form_token": grant_form_token(signed_in)}
    )
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert (
        signed_in.post(f"/portal/keys/{issued.api_key.id}/revoke/").status_code
        == HTTPStatus.NOT_FOUND
    )
    assert ApiKey.objects.get().status == "active" and ApiKey.objects.count() == 1


@pytest.mark.django_db
def test_with_organization_keys_off_the_organization_pages_are_gone(client, writer, acme, api):
    client.force_login(writer)
    org_key = issue(api=api, organization=acme).api_key
    switch(organization_keys_enabled=False)
    for path in (f"/portal/orgs/{acme.code}/keys/", f"/portal/keys/{org_key.id}/"):
        assert client.get(path).status_code == HTTPStatus.NOT_FOUND
    assert client.post(f"/portal/keys/{org_key.id}/revoke/").status_code == HTTPStatus.NOT_FOUND
    assert ApiKey.objects.get(pk=org_key.pk).status == "active"
    page = client.get("/portal/keys/")
    assert page.status_code == HTTPStatus.OK and acme.name.encode() not in page.content


@pytest.mark.django_db
def test_with_both_kinds_off_the_portal_says_so(signed_in):
    switch(user_keys_enabled=False, organization_keys_enabled=False)
    response = signed_in.get("/portal/")
    assert response.status_code == HTTPStatus.OK
    assert b'data-testid="self-serve-off"' in response.content
    assert b"turned off" in response.content
    assert signed_in.get("/portal/keys/").status_code == HTTPStatus.NOT_FOUND


@pytest.mark.django_db
def test_the_portal_home_opens_the_first_page_the_user_has(client, reader, acme):
    client.force_login(reader)
    assert client.get("/portal/")["Location"] == "/portal/keys/"
    switch(user_keys_enabled=False)
    assert client.get("/portal/")["Location"] == f"/portal/orgs/{acme.code}/keys/"
    client.force_login(UserFactory())
    response = client.get("/portal/")
    assert response.status_code == HTTPStatus.OK
    assert b"No API keys to show yet" in response.content


# --------------------------------------------------------------------------- headers and cost


@pytest.mark.django_db
def test_every_portal_page_forbids_framing_and_foreign_scripts(signed_in):
    for path in ("/portal/keys/", "/portal/keys/new/", "/portal/nope/"):
        response = signed_in.get(path)
        assert response["X-Frame-Options"] == "DENY"
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy


def list_queries(client: Any, path: str) -> int:
    client.get(path)  # warm: the session row and the settings row exist from here on
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == HTTPStatus.OK
    return len(queries)


@pytest.mark.django_db
@pytest.mark.parametrize("owner", ["user", "organization"])
def test_the_key_list_costs_the_same_queries_for_10_and_1000_keys(
    client, api, read_users, owner, capsys
):
    organization = OrganizationFactory()
    user = member_of(organization, "write")
    client.force_login(user)
    path = "/portal/keys/" if owner == "user" else f"/portal/orgs/{organization.code}/keys/"
    owner_kwargs = {"user": user} if owner == "user" else {"organization": organization}
    for n in range(10):
        issue(api=api, name=f"Key {n}", scopes=("read:users",), **owner_kwargs)
    with_10 = list_queries(client, path)
    for n in range(10, 1000):
        issue(api=api, name=f"Key {n}", scopes=("read:users",), **owner_kwargs)
    with_1000 = list_queries(client, path)
    rows = client.get(path).content.decode().count("data-key-id=")
    with capsys.disabled():
        print(
            f"\n[query count] {owner} key list: {with_10} queries with 10 keys, {with_1000} with 1000"
        )
    assert with_10 == with_1000
    assert rows == 50
    assert client.get(f"{path}?page=20").content.decode().count("data-key-id=") == 50
    assert client.get(f"{path}?page=21").status_code == HTTPStatus.NOT_FOUND


@pytest.mark.django_db
def test_sign_in_fails_closed_with_503_when_the_throttle_cache_is_down(client, monkeypatch):
    """Without its counts the throttle cannot limit guessing: sign-in is refused, and the
    password is never checked, rather than checked without a limit."""
    user = UserFactory(password=PASSWORD)
    checked = []
    break_limiter(monkeypatch)
    monkeypatch.setattr(type(user), "check_password", lambda self, raw: checked.append(raw) or True)
    response = client.post(
        LOGIN, {"username": user.username, "password": PASSWORD}, REMOTE_ADDR=fresh_ip()
    )
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["Retry-After"] == "30"
    assert "_auth_user_id" not in client.session
    assert checked == []


def limiter_down_for(monkeypatch: Any, name: str, *, unless: str = "") -> None:
    """``ratelimit.<name>`` raises LimiterUnavailable (for every bucket whose key does not
    contain ``unless``): the storage going down in the middle of one sign-in."""
    from apikeys import ratelimit

    real = getattr(ratelimit, name)

    def flaky(bucket: str, **kwargs: Any) -> Any:
        if unless and unless in bucket:
            return real(bucket, **kwargs)
        raise ratelimit.LimiterUnavailable("ConnectionError")

    monkeypatch.setattr(ratelimit, name, flaky)


@pytest.mark.django_db
def test_a_wrong_password_is_refused_as_wrong_when_its_failure_cannot_be_counted(
    client, monkeypatch
):
    """The pair's count worked (the attempt was let through to the password check), then the
    storage failed while counting the failure against the IP and the account: the answer is
    still the wrong-password one, and nobody is signed in."""
    user = UserFactory(password=PASSWORD)
    limiter_down_for(monkeypatch, "hit", unless=":pair:")
    response = client.post(
        LOGIN, {"username": user.username, "password": "not-the-password"}, REMOTE_ADDR=fresh_ip()
    )
    assert response.status_code == HTTPStatus.OK
    form = response.context["form"]
    assert [error.code for error in form.non_field_errors().as_data()] == ["invalid_login"]
    assert not form.throttled and not form.unavailable
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_right_password_signs_in_even_when_its_count_cannot_be_cleared(client, monkeypatch):
    """Forgetting the pair's attempts is housekeeping: the storage failing there does not undo
    a sign-in whose password was checked under the limit."""
    user = UserFactory(password=PASSWORD)
    limiter_down_for(monkeypatch, "clear")
    response = client.post(
        LOGIN, {"username": user.username, "password": PASSWORD}, REMOTE_ADDR=fresh_ip()
    )
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/portal/"
    assert client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db
def test_an_attempt_is_counted_before_its_password_is_checked(client, settings):
    """Counting first is what makes the limit exact under concurrency: an attempt that is
    in the middle of its password check already counts against the next one."""
    from apikeys.signin import LoginThrottle

    settings.APIKEYS = {**settings.APIKEYS, "PORTAL_LOGIN_MAX_FAILURES": 2}
    throttle = LoginThrottle(username=f"race-{fresh_ip()}@example.com", ip=fresh_ip())
    assert throttle.begin() is True
    assert throttle.begin() is True
    assert throttle.begin() is False  # two attempts in flight, the third is refused
    throttle.record_success()
    assert throttle.begin() is True  # a right password cleared the pair's count
