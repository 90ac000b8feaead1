"""Every write of the portal: one-time portal links and the self-serve switches.

Same rules as ``apikeys.services``: keyword-only arguments, ``transaction.atomic`` around
each write and its ``AuditEvent``, coded errors from ``apikeys.exceptions``. A portal link's
token exists only in the URL that :func:`portal_link_create` returns; the database keeps its
SHA-256 digest.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apikeys import conf
from apikeys import exceptions as errors
from apikeys.models import AuditEvent, Membership, Organization
from apikeys.services import Actor, audit_event_record
from portal import exceptions as link_errors
from portal.models import (
    MAX_LINK_LIFETIME_SECONDS,
    MIN_LINK_LIFETIME_SECONDS,
    PortalLink,
    SelfServeSettings,
)

SubNav = PortalLink.SubNav

# secrets.token_urlsafe(32): 43 characters of base64url, 256 bits.
TOKEN_BYTES = 32
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
MAX_RETURN_URL_LENGTH = 2048


def token_digest(token: str) -> str:
    """What is stored for a link's token. A plain SHA-256 is enough: the token is 256
    random bits, so there is nothing to brute-force and no need for a key or a slow hash."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def portal_base_url(request: Any) -> str:
    """Scheme and host for the portal links answered to ``request``: the configured
    ``PORTAL_PUBLIC_URL``, else the scheme and host the request came in on (``get_host``
    has already checked it against ``ALLOWED_HOSTS``)."""
    configured = conf.get("PORTAL_PUBLIC_URL")
    if configured:
        return str(configured).rstrip("/")
    return f"{request.scheme}://{request.get_host()}"


# --------------------------------------------------------------------------- portal links


def portal_link_create(
    *,
    user: Any,
    organization: Organization | None = None,
    return_url: str | None = None,
    sub_nav: str | None = None,
    base_url: str,
    actor: Actor,
) -> str:
    """Create a one-time link that signs ``user`` into the portal, and return its URL.

    The link is valid for the self-serve settings' lifetime and opens the page ``sub_nav``
    names: ``api_keys`` / ``user_api_keys`` the user's keys, ``organization_api_keys`` the
    keys of ``organization`` (without ``sub_nav``: the organization's keys when one is
    given, else the user's). ``return_url`` becomes the portal's "Back to app" link.

    Raises ``UserNotInOrganization`` when ``user`` is not a member of ``organization``, and
    ``ValidationFailed`` with code ``INVALID_RETURN_URL`` (a ``return_url`` that is not
    http(s) on a host of ``APIKEYS['PORTAL_RETURN_URL_HOSTS']``) or ``INVALID_SUB_NAV``.
    """
    base = _check_base_url(base_url)
    chosen_sub_nav = _check_sub_nav(sub_nav, organization)
    checked_return_url = _check_return_url(return_url)
    if (
        organization is not None
        and not Membership.objects.filter(user=user, organization=organization).exists()
    ):
        raise errors.UserNotInOrganization(field="organization_code")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = timezone.now()
    lifetime = SelfServeSettings.load().portal_link_lifetime_seconds
    with transaction.atomic():
        link = PortalLink.objects.create(
            digest=token_digest(token),
            user=user,
            organization=organization,
            sub_nav=chosen_sub_nav,
            return_url=checked_return_url,
            created_by=actor.label[:200],
            created_on=now,
            expires_at=now + timedelta(seconds=lifetime),
        )
        audit_event_record(
            actor=actor,
            action=AuditEvent.Action.PORTAL_LINK_CREATED,
            target_type="portal_link",
            target_id=str(link.pk),
            organization=organization,
            user_public_id=user.public_id,
            details={
                "sub_nav": chosen_sub_nav,
                "return_url": checked_return_url,
                "expires_at": link.expires_at.isoformat(),
            },
        )
    return base + reverse("portal:link", kwargs={"token": token})


def portal_links_purge(*, expired_for: timedelta, actor: Actor) -> int:
    """Delete the portal links that expired more than ``expired_for`` ago (used or not)
    and return how many went; one ``portal_link.purged`` event records a purge that
    deleted any.

    Such a link can sign nobody in; its creation and use stay in the audit trail. Until it
    is purged, a click on it says "used" or "expired"; afterwards, "not valid".
    """
    if expired_for < timedelta(0):
        raise errors.ValidationFailed(
            "The age must not be negative.", code="INVALID_FIELD", field="expired_for"
        )
    cutoff = timezone.now() - expired_for
    with transaction.atomic():
        deleted, _ = PortalLink.objects.filter(expires_at__lt=cutoff).delete()
        if deleted:
            audit_event_record(
                actor=actor,
                action=AuditEvent.Action.PORTAL_LINKS_PURGED,
                target_type="portal_link",
                target_id="expired",
                details={"deleted": deleted, "expired_before": cutoff.isoformat()},
            )
    return deleted


@dataclass(frozen=True)
class RedeemedLink:
    """A portal link just used: whom to sign in, and where to take them."""

    user: Any
    organization: Organization | None
    sub_nav: str
    return_url: str


def portal_link_redeem(*, token: Any, ip: str | None = None) -> RedeemedLink:
    """Use the link with ``token``, exactly once, and say whom it signs in.

    The link is consumed by one conditional ``UPDATE … SET used_at = now WHERE digest = …
    AND used_at IS NULL AND expires_at > now`` whose row count decides: two clicks at the
    same moment cannot both see "unused" and both sign in, as a read-then-write would allow
    (PostgreSQL re-checks ``used_at IS NULL`` on the row after the first update commits;
    SQLite serialises writers). Raises ``PortalLinkInvalid``, ``PortalLinkUsed`` or
    ``PortalLinkExpired``.
    """
    if not isinstance(token, str) or not TOKEN_PATTERN.fullmatch(token):
        raise link_errors.PortalLinkInvalid()
    digest = token_digest(token)
    now = timezone.now()
    with transaction.atomic():
        consumed = PortalLink.objects.filter(
            digest=digest, used_at__isnull=True, expires_at__gt=now
        ).update(used_at=now)
        if consumed != 1:
            raise link_failure(digest=digest, now=now)
        link = PortalLink.objects.select_related("user", "organization").get(digest=digest)
        if not link.user.is_active:
            # Raising rolls the UPDATE back: the link stays unused, and useless.
            raise link_errors.PortalLinkInvalid()
        audit_event_record(
            actor=Actor(user=link.user, ip=ip),
            action=AuditEvent.Action.PORTAL_LINK_USED,
            target_type="portal_link",
            target_id=str(link.pk),
            organization=link.organization,
            user_public_id=link.user.public_id,
            details={"sub_nav": link.sub_nav},
        )
    return RedeemedLink(
        user=link.user,
        organization=link.organization,
        sub_nav=link.sub_nav,
        return_url=link.return_url,
    )


def portal_link_check(*, token: Any) -> PortalLink:
    """The unused, unexpired link with ``token``, without using it (for the confirmation
    page); raises like :func:`portal_link_redeem`."""
    if not isinstance(token, str) or not TOKEN_PATTERN.fullmatch(token):
        raise link_errors.PortalLinkInvalid()
    digest = token_digest(token)
    now = timezone.now()
    link = (
        PortalLink.objects.select_related("user", "organization")
        .filter(digest=digest, used_at__isnull=True, expires_at__gt=now)
        .first()
    )
    if link is None:
        raise link_failure(digest=digest, now=now)
    if not link.user.is_active:
        raise link_errors.PortalLinkInvalid()
    return link


def link_failure(*, digest: str, now: Any) -> link_errors.PortalLinkError:
    """Why the link with ``digest`` cannot be used: used, expired, or else not valid (no such
    link; the callers' own filter has already found no usable one)."""
    link = PortalLink.objects.filter(digest=digest).only("used_at", "expires_at").first()
    if link is not None and link.used_at is not None:
        return link_errors.PortalLinkUsed()
    if link is not None and link.expires_at <= now:
        return link_errors.PortalLinkExpired()
    return link_errors.PortalLinkInvalid()


def _check_base_url(base_url: Any) -> str:
    parts = urlsplit(base_url) if isinstance(base_url, str) else None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.netloc:
        # The caller's mistake, not the API client's: the API view passes the request's
        # own scheme and host (portal_base_url).
        raise ValueError("base_url must be an http(s) scheme and host.")
    return base_url.rstrip("/")


def _check_sub_nav(sub_nav: Any, organization: Organization | None) -> str:
    if sub_nav is None or sub_nav == "":
        return SubNav.ORGANIZATION_API_KEYS if organization is not None else SubNav.API_KEYS
    if not isinstance(sub_nav, str) or sub_nav not in SubNav.values:
        raise errors.ValidationFailed(
            f"sub_nav must be one of: {', '.join(SubNav.values)}.",
            code="INVALID_SUB_NAV",
            field="sub_nav",
        )
    if sub_nav == SubNav.ORGANIZATION_API_KEYS and organization is None:
        raise errors.ValidationFailed(
            "sub_nav organization_api_keys needs an organization_code.",
            code="INVALID_SUB_NAV",
            field="sub_nav",
        )
    return sub_nav


def _check_return_url(return_url: Any) -> str:
    """``return_url`` if it is an absolute http(s) URL on an allowed host, else a 400.

    An open redirect is a vulnerability: the portal would lend its name to a phishing page.
    So only hosts the platform lists are accepted, and anything a browser might read
    differently from Python's parser (backslashes, control characters, spaces, credentials
    before the host) is refused rather than interpreted.
    """
    if return_url is None or return_url == "":
        return ""
    invalid = errors.ValidationFailed(
        "return_url must be an http or https URL on a host this platform allows.",
        code="INVALID_RETURN_URL",
        field="return_url",
    )
    if not isinstance(return_url, str) or len(return_url) > MAX_RETURN_URL_LENGTH:
        raise invalid
    if "\\" in return_url or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in return_url):
        raise invalid
    try:
        parts = urlsplit(return_url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError:
        raise invalid from None
    if (
        parts.scheme not in {"http", "https"}
        or not host
        or parts.username is not None
        or parts.password is not None
        or not return_host_allowed(host)
    ):
        raise invalid
    return return_url


def return_host_allowed(host: str) -> bool:
    """True when ``host`` is one of ``PORTAL_RETURN_URL_HOSTS`` (a leading dot in an entry
    allows that domain and its subdomains)."""
    host = host.lower()
    if ":" in host:  # an IPv6 address: the setting writes it in brackets, as in a URL
        host = f"[{host}]"
    for entry in conf.get("PORTAL_RETURN_URL_HOSTS"):
        entry = entry.lower()
        if entry.startswith("."):
            if host == entry[1:] or host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False


# --------------------------------------------------------------------------- self-serve switches


def self_serve_settings_update(
    *,
    user_keys_enabled: bool | None = None,
    organization_keys_enabled: bool | None = None,
    portal_link_lifetime_seconds: int | None = None,
    actor: Actor,
) -> SelfServeSettings:
    """Change the self-serve switches (``None`` leaves a value as it is).

    Switching a kind off hides its portal pages and refuses their actions at once; keys
    already issued keep verifying. Records one audit event listing what changed, and none
    when nothing did.
    """
    wanted: dict[str, Any] = {}
    for name, value in (
        ("user_keys_enabled", user_keys_enabled),
        ("organization_keys_enabled", organization_keys_enabled),
    ):
        if value is not None:
            if not isinstance(value, bool):
                raise errors.ValidationFailed(
                    f"{name} must be true or false.", code="INVALID_FIELD", field=name
                )
            wanted[name] = value
    if portal_link_lifetime_seconds is not None:
        if (
            isinstance(portal_link_lifetime_seconds, bool)
            or not isinstance(portal_link_lifetime_seconds, int)
            or not MIN_LINK_LIFETIME_SECONDS
            <= portal_link_lifetime_seconds
            <= MAX_LINK_LIFETIME_SECONDS
        ):
            raise errors.ValidationFailed(
                f"The portal link lifetime must be {MIN_LINK_LIFETIME_SECONDS} to "
                f"{MAX_LINK_LIFETIME_SECONDS} seconds.",
                code="INVALID_FIELD",
                field="portal_link_lifetime_seconds",
            )
        wanted["portal_link_lifetime_seconds"] = portal_link_lifetime_seconds
    with transaction.atomic():
        SelfServeSettings.load()
        row = SelfServeSettings.objects.select_for_update().get(pk=SelfServeSettings.SINGLETON_ID)
        changes = {
            name: [getattr(row, name), value]
            for name, value in wanted.items()
            if getattr(row, name) != value
        }
        if changes:
            for name, (_, value) in changes.items():
                setattr(row, name, value)
            row.updated_on = timezone.now()
            row.save()
            audit_event_record(
                actor=actor,
                action=AuditEvent.Action.SELF_SERVE_SETTINGS_CHANGED,
                target_type="self_serve_settings",
                target_id="self_serve_settings",
                details={"changes": changes},
            )
    return row
