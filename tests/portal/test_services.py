"""portal.services: one-time portal links and the self-serve switches."""

from __future__ import annotations

import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apikeys import services
from apikeys.exceptions import UserNotInOrganization, ValidationFailed
from apikeys.models import AuditEvent
from portal import exceptions as link_errors
from portal.models import PortalLink, SelfServeSettings
from portal.services import (
    portal_base_url,
    portal_link_check,
    portal_link_create,
    portal_link_redeem,
    self_serve_settings_update,
    token_digest,
)
from tests.factories import UserFactory

BASE = "https://keys.example.com"


def token_of(url: str) -> str:
    path = urlsplit(url).path
    assert path.startswith("/portal/link/") and path.endswith("/")
    return path.removeprefix("/portal/link/").rstrip("/")


def create(**options):
    options.setdefault("base_url", BASE)
    options.setdefault("actor", services.Actor.system())
    return portal_link_create(**options)


# --------------------------------------------------------------------------- create


def test_a_link_is_an_absolute_url_on_the_base_url_and_only_its_digest_is_stored(user):
    url = create(user=user)
    token = token_of(url)
    assert url.startswith(f"{BASE}/portal/link/")
    link = PortalLink.objects.get()
    assert link.digest == token_digest(token)
    assert link.user == user
    # The token itself is nowhere in the row, nor in the audit trail.
    row_text = " ".join(str(v) for v in PortalLink.objects.values().get().values())
    audit_text = str(list(AuditEvent.objects.values()))
    assert token not in row_text and token not in audit_text


def test_a_base_url_with_a_trailing_slash_does_not_double_it(user):
    assert create(user=user, base_url=f"{BASE}/").startswith(f"{BASE}/portal/link/")


@pytest.mark.parametrize("bad", ["keys.example.com", "ftp://keys.example.com", "", None])
def test_a_base_url_that_is_not_http_is_a_programming_error(user, bad):
    with pytest.raises(ValueError):
        create(user=user, base_url=bad)
    assert not PortalLink.objects.exists()


def test_each_link_has_its_own_token(user):
    assert token_of(create(user=user)) != token_of(create(user=user))


def test_a_link_expires_after_the_lifetime_in_the_self_serve_settings(user):
    self_serve_settings_update(portal_link_lifetime_seconds=120, actor=services.Actor.system())
    before = timezone.now()
    create(user=user)
    link = PortalLink.objects.get()
    assert (
        before + timedelta(seconds=119)
        <= link.expires_at
        <= timezone.now() + timedelta(seconds=120)
    )


def test_creating_a_link_is_audited_with_the_actor_user_and_organization(writer, acme):
    create(user=writer, organization=acme, actor=services.Actor(user=writer, ip="10.0.0.1"))
    event = AuditEvent.objects.get(action=AuditEvent.Action.PORTAL_LINK_CREATED)
    link = PortalLink.objects.get()
    assert event.target_id == str(link.pk)
    assert (event.org_code, event.user_public_id, event.ip) == (
        acme.code,
        writer.public_id,
        "10.0.0.1",
    )
    assert event.details["sub_nav"] == "organization_api_keys"


@pytest.mark.parametrize(
    "sub_nav, with_org, stored",
    [
        (None, False, "api_keys"),
        (None, True, "organization_api_keys"),
        ("api_keys", True, "api_keys"),
        ("user_api_keys", False, "user_api_keys"),
        ("organization_api_keys", True, "organization_api_keys"),
    ],
)
def test_sub_nav_names_the_page_and_defaults_to_the_organization_when_one_is_given(
    writer, acme, sub_nav, with_org, stored
):
    create(user=writer, organization=acme if with_org else None, sub_nav=sub_nav)
    assert PortalLink.objects.get().sub_nav == stored


@pytest.mark.parametrize("sub_nav", ["profile", "API_KEYS", 3, ["api_keys"]])
def test_an_unknown_sub_nav_is_refused(user, sub_nav):
    with pytest.raises(ValidationFailed) as caught:
        create(user=user, sub_nav=sub_nav)
    assert (caught.value.code, caught.value.field) == ("INVALID_SUB_NAV", "sub_nav")
    assert not PortalLink.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PORTAL_LINK_CREATED).exists()


def test_organization_api_keys_without_an_organization_is_refused(user):
    with pytest.raises(ValidationFailed) as caught:
        create(user=user, sub_nav="organization_api_keys")
    assert caught.value.code == "INVALID_SUB_NAV"
    assert not PortalLink.objects.exists()


def test_an_organization_the_user_is_not_a_member_of_is_refused(user, globex):
    with pytest.raises(UserNotInOrganization) as caught:
        create(user=user, organization=globex)
    assert caught.value.code == "USER_NOT_IN_ORGANIZATION"
    assert not PortalLink.objects.exists()


@pytest.mark.parametrize(
    "return_url",
    [
        "https://app.example.com/settings?tab=keys#top",
        "http://app.example.com:8080/",
        "https://example.org/",
        "https://deep.sub.example.org/back",
        "HTTPS://APP.EXAMPLE.COM/x",
        "http://[::1]:3000/",
    ],
)
def test_an_http_return_url_on_an_allowed_host_is_kept(user, return_hosts, return_url):
    create(user=user, return_url=return_url)
    assert PortalLink.objects.get().return_url == return_url


@pytest.mark.parametrize(
    "return_url",
    [
        "https://evil.example.net/",
        "https://app.example.com.evil.net/",
        "https://evilexample.org/",
        "https://app.example.com@evil.net/",
        "https://user:pass@app.example.com/",
        "javascript:alert(1)//app.example.com",
        "data:text/html,hi",
        "ftp://app.example.com/",
        "//app.example.com/",
        "/relative/path",
        "https:\\\\evil.net\\app.example.com",
        "https://app.example.com\\@evil.net/",
        "https://app.example.com/\nx",
        "https://app.example.com /",
        "https://app.example.com:99999/",
        "https://",
        "https://app.example.com/" + "a" * 2048,
        42,
    ],
)
def test_a_return_url_that_is_not_http_on_an_allowed_host_is_refused(
    user, return_hosts, return_url
):
    with pytest.raises(ValidationFailed) as caught:
        create(user=user, return_url=return_url)
    assert (caught.value.code, caught.value.field) == ("INVALID_RETURN_URL", "return_url")
    assert not PortalLink.objects.exists()


def test_with_no_allowed_hosts_configured_every_return_url_is_refused(user):
    with pytest.raises(ValidationFailed) as caught:
        create(user=user, return_url="https://app.example.com/")
    assert caught.value.code == "INVALID_RETURN_URL"


# --------------------------------------------------------------------------- redeem


def test_a_link_signs_its_user_in_once_and_says_where_to_go(writer, acme, return_hosts):
    url = create(user=writer, organization=acme, return_url="https://app.example.com/")
    redeemed = portal_link_redeem(token=token_of(url), ip="192.0.2.7")
    assert redeemed.user == writer
    assert redeemed.organization == acme
    assert redeemed.sub_nav == "organization_api_keys"
    assert redeemed.return_url == "https://app.example.com/"
    assert PortalLink.objects.get().used_at is not None
    event = AuditEvent.objects.get(action=AuditEvent.Action.PORTAL_LINK_USED)
    assert (event.actor_user, event.ip, event.org_code) == (writer, "192.0.2.7", acme.code)


def test_a_link_used_twice_is_refused_the_second_time(user):
    token = token_of(create(user=user))
    portal_link_redeem(token=token)
    with pytest.raises(link_errors.PortalLinkUsed) as caught:
        portal_link_redeem(token=token)
    assert caught.value.code == "PORTAL_LINK_USED"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PORTAL_LINK_USED).count() == 1


def test_an_expired_link_is_refused_and_stays_unused(user):
    token = token_of(create(user=user))
    PortalLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(link_errors.PortalLinkExpired) as caught:
        portal_link_redeem(token=token)
    assert caught.value.code == "PORTAL_LINK_EXPIRED"
    assert PortalLink.objects.get().used_at is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: t[:-1],
        lambda t: t + "A",
        lambda t: t.upper(),
        lambda t: "",
        lambda t: None,
        lambda t: "../" + t[3:],
    ],
)
def test_a_tampered_link_is_refused_and_the_real_one_still_works(user, tamper):
    token = token_of(create(user=user))
    with pytest.raises(link_errors.PortalLinkInvalid) as caught:
        portal_link_redeem(token=tamper(token))
    assert caught.value.code == "PORTAL_LINK_INVALID"
    assert portal_link_redeem(token=token).user == user


def test_a_link_of_a_deactivated_user_signs_no_one_in(user):
    token = token_of(create(user=user))
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    with pytest.raises(link_errors.PortalLinkInvalid):
        portal_link_redeem(token=token)
    with pytest.raises(link_errors.PortalLinkInvalid):
        portal_link_check(token=token)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PORTAL_LINK_USED).exists()


def test_checking_a_link_does_not_use_it(user):
    token = token_of(create(user=user))
    assert portal_link_check(token=token).user == user
    assert portal_link_check(token=token).user == user
    assert PortalLink.objects.get().used_at is None
    portal_link_redeem(token=token)
    with pytest.raises(link_errors.PortalLinkUsed):
        portal_link_check(token=token)


def test_redeeming_consumes_the_link_with_one_conditional_update(user):
    """The race guard is in the statement itself: UPDATE … WHERE used_at IS NULL, whose row
    count decides, not a SELECT followed by a write."""
    token = token_of(create(user=user))
    with CaptureQueriesContext(connection) as queries:
        portal_link_redeem(token=token)
    updates = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1
    assert '"used_at" IS NULL' in updates[0] and '"expires_at" >' in updates[0]
    assert not any("FOR UPDATE" in q["sql"] for q in queries)


@pytest.mark.django_db(transaction=True)
def test_a_link_clicked_twice_at_the_same_moment_signs_in_exactly_once():
    user = UserFactory()
    token = token_of(create(user=user))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def click() -> None:
        barrier.wait()
        try:
            portal_link_redeem(token=token)
            outcomes.append("signed in")
        except link_errors.PortalLinkUsed:
            outcomes.append("used")
        except Exception as exc:  # noqa: BLE001  (SQLite may say "table is locked": no sign-in either)
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes.count("signed in") == 1, outcomes
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PORTAL_LINK_USED).count() == 1


# --------------------------------------------------------------------------- self-serve switches


def test_a_fresh_install_has_both_kinds_of_self_serve_keys_switched_on(db):
    row = SelfServeSettings.load()
    assert (row.user_keys_enabled, row.organization_keys_enabled) == (True, True)
    assert 60 <= row.portal_link_lifetime_seconds <= 900
    assert SelfServeSettings.load().pk == row.pk == 1


def test_updating_the_switches_is_audited_with_what_changed(user):
    actor = services.Actor(user=user, ip="198.51.100.1")
    row = self_serve_settings_update(user_keys_enabled=False, actor=actor)
    assert (row.user_keys_enabled, row.organization_keys_enabled) == (False, True)
    event = AuditEvent.objects.get(action=AuditEvent.Action.SELF_SERVE_SETTINGS_CHANGED)
    assert event.actor_user == user
    assert event.details == {"changes": {"user_keys_enabled": [True, False]}}


def test_an_update_that_changes_nothing_records_nothing(db):
    self_serve_settings_update(user_keys_enabled=True, actor=services.Actor.system())
    assert not AuditEvent.objects.filter(
        action=AuditEvent.Action.SELF_SERVE_SETTINGS_CHANGED
    ).exists()


@pytest.mark.parametrize(
    "change",
    [
        {"user_keys_enabled": "no"},
        {"organization_keys_enabled": 0},
        {"portal_link_lifetime_seconds": 29},
        {"portal_link_lifetime_seconds": 3601},
        {"portal_link_lifetime_seconds": True},
        {"portal_link_lifetime_seconds": 60.0},
    ],
)
def test_bad_switch_values_are_refused_and_change_nothing(db, change):
    with pytest.raises(ValidationFailed) as caught:
        self_serve_settings_update(**change, actor=services.Actor.system())
    assert caught.value.code == "INVALID_FIELD"
    row = SelfServeSettings.load()
    assert (
        row.user_keys_enabled,
        row.organization_keys_enabled,
        row.portal_link_lifetime_seconds,
    ) == (
        True,
        True,
        300,
    )
    assert not AuditEvent.objects.filter(
        action=AuditEvent.Action.SELF_SERVE_SETTINGS_CHANGED
    ).exists()


def test_the_database_holds_only_one_settings_row(db):
    from django.db import IntegrityError, transaction

    SelfServeSettings.load()
    with pytest.raises(IntegrityError), transaction.atomic():
        SelfServeSettings.objects.create(id=2)
    assert SelfServeSettings.objects.count() == 1


@pytest.mark.parametrize(
    "configured, expected",
    [
        ("https://keys.example.com/", "https://keys.example.com"),
        ("", "http://api.internal:8000"),
    ],
)
def test_links_are_minted_on_the_public_url_when_one_is_configured(settings, configured, expected):
    """Behind a proxy the request's own host may be an internal name: the configured public
    URL wins, and the request's scheme and host serve only when none is set."""
    settings.ALLOWED_HOSTS = ["api.internal"]
    settings.APIKEYS = {**settings.APIKEYS, "PORTAL_PUBLIC_URL": configured}
    request = RequestFactory().post("/api/v1/portal_links", HTTP_HOST="api.internal:8000")
    assert portal_base_url(request) == expected
