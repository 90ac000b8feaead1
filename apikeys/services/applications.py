"""Machine-to-machine applications: the OAuth 2.0 client-credentials clients of the
Management API, with the scopes granted to them (``M2MGrant``).

Disabling, deleting, narrowing or regenerating an application applies to the tokens it
already holds from their next request (``apikeys.oauth``). Every service here that changes
what an application's tokens may do (or the name its audit events carry) calls
:func:`apikeys.tokencache.invalidate_application` inside its transaction, so that workers
holding its tokens in their cache refuse them before the service returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from apikeys import exceptions as errors
from apikeys import tokencache
from apikeys.models import MANAGEMENT_SCOPES, M2MGrant
from apikeys.services._shared import Action, check_text
from apikeys.services.audit import Actor, audit_event_record


@dataclass(frozen=True)
class IssuedApplication:
    """An M2M application just created, with its client secret: show it once."""

    application: Any
    client_secret: str = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"IssuedApplication(client_id={self.application.client_id!r}, client_secret=<hidden>)"
        )


def _check_management_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(scopes))
    unknown = [s for s in chosen if s not in MANAGEMENT_SCOPES]
    if unknown:
        raise errors.ValidationFailed(
            f"Unknown Management API scope(s): {', '.join(str(u)[:64] for u in unknown)}.",
            code="INVALID_SCOPE",
            field="scopes",
        )
    return chosen


def m2m_application_create(*, name: str, scopes: Iterable[str], actor: Actor) -> IssuedApplication:
    """Create a confidential client-credentials application granted ``scopes``.

    The client secret is stored hashed by django-oauth-toolkit; the plaintext exists only
    in the returned value.
    """
    from oauth2_provider.generators import generate_client_secret
    from oauth2_provider.models import get_application_model

    Application = get_application_model()
    name = check_text(name, field="name", max_length=255)
    chosen = _check_management_scopes(scopes)
    secret = generate_client_secret()
    with transaction.atomic():
        application = Application(
            name=name,
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
            client_secret=secret,
            hash_client_secret=True,
        )
        application.save()
        M2MGrant.objects.create(application=application, scopes=" ".join(chosen))
        audit_event_record(
            actor=actor,
            action=Action.APPLICATION_CREATED,
            target_type="application",
            target_id=str(application.client_id)[:64],
            details={"name": name, "scopes": chosen},
        )
    return IssuedApplication(application=application, client_secret=secret)


def m2m_application_update(
    *, application: Any, name: str | None = None, scopes: Iterable[str] | None = None, actor: Actor
) -> Any:
    """Rename an M2M application and/or replace its granted scopes (``None`` leaves a value
    as is); its credentials stay. One ``application.updated`` event names everything that
    changed, or none is recorded when nothing did."""
    name = None if name is None else check_text(name, field="name", max_length=255)
    chosen = None if scopes is None else _check_management_scopes(scopes)
    changed: dict[str, Any] = {}
    with transaction.atomic():
        locked = type(application).objects.select_for_update().get(pk=application.pk)
        if name is not None and name != locked.name:
            locked.name = name
            locked.save(update_fields=["name", "updated"])
            changed["name"] = name
        if chosen is not None:
            grant, created = M2MGrant.objects.get_or_create(
                application=locked, defaults={"scopes": " ".join(chosen)}
            )
            if created or grant.scope_list != chosen:
                grant.scopes = " ".join(chosen)
                grant.save(update_fields=["scopes"])
                changed["scopes"] = chosen
        if changed:
            tokencache.invalidate_application(locked.pk)
            audit_event_record(
                actor=actor,
                action=Action.APPLICATION_UPDATED,
                target_type="application",
                target_id=str(locked.client_id)[:64],
                details=changed,
            )
    return locked


def m2m_application_set_scopes(
    *, application: Any, scopes: Iterable[str], actor: Actor
) -> M2MGrant:
    """Replace the scopes granted to ``application``. New tokens carry only the new grant;
    tokens already issued keep only the scopes still granted, from their next request
    (``apikeys.oauth``)."""
    m2m_application_update(application=application, scopes=scopes, actor=actor)
    return M2MGrant.objects.get(application=application)


def _m2m_application_set_disabled(*, application: Any, disabled: bool, actor: Actor) -> M2MGrant:
    with transaction.atomic():
        locked = type(application).objects.select_for_update().get(pk=application.pk)
        grant, _created = M2MGrant.objects.get_or_create(application=locked)
        if grant.is_active == disabled:
            grant.disabled_at = timezone.now() if disabled else None
            grant.save(update_fields=["disabled_at"])
            tokencache.invalidate_application(locked.pk)
            audit_event_record(
                actor=actor,
                action=Action.APPLICATION_DISABLED if disabled else Action.APPLICATION_ENABLED,
                target_type="application",
                target_id=str(locked.client_id)[:64],
                details={"name": locked.name},
            )
    return grant


def m2m_application_disable(*, application: Any, actor: Actor) -> M2MGrant:
    """Disable an M2M application: it gets no new token (``invalid_client``) and the tokens
    it holds are refused from their next request (401). Its secret and grant stay, for
    :func:`m2m_application_enable`. Disabling a disabled application records nothing."""
    return _m2m_application_set_disabled(application=application, disabled=True, actor=actor)


def m2m_application_enable(*, application: Any, actor: Actor) -> M2MGrant:
    """Re-enable a disabled M2M application: its secret and unexpired tokens work again.
    Enabling an enabled application records nothing."""
    return _m2m_application_set_disabled(application=application, disabled=False, actor=actor)


def m2m_application_regenerate_secret(*, application: Any, actor: Actor) -> IssuedApplication:
    """Give an M2M application a new client secret: the old one stops working at once, and
    so do the tokens it already holds (whoever has the leaked secret may hold tokens too);
    the service fetches a new token with the new secret. The plaintext exists only in the
    returned value: show it once."""
    from oauth2_provider.generators import generate_client_secret
    from oauth2_provider.models import get_access_token_model, get_refresh_token_model

    secret = generate_client_secret()
    with transaction.atomic():
        locked = type(application).objects.select_for_update().get(pk=application.pk)
        locked.client_secret = secret
        locked.hash_client_secret = True
        locked.save(update_fields=["client_secret", "hash_client_secret", "updated"])
        get_refresh_token_model().objects.filter(application=locked).delete()
        AccessToken = get_access_token_model()
        _total, by_model = AccessToken.objects.filter(application=locked).delete()
        ended = by_model.get(AccessToken._meta.label, 0)
        tokencache.invalidate_application(locked.pk)
        audit_event_record(
            actor=actor,
            action=Action.APPLICATION_SECRET_REGENERATED,
            target_type="application",
            target_id=str(locked.client_id)[:64],
            details={"name": locked.name, "tokens_ended": ended},
        )
    return IssuedApplication(application=locked, client_secret=secret)


def m2m_application_delete(*, application: Any, actor: Actor) -> None:
    """Delete an M2M application with its grant and tokens: its credentials stop working at
    once. Keys it created stay, with its name as their creator."""
    with transaction.atomic():
        locked = type(application).objects.select_for_update().get(pk=application.pk)
        audit_event_record(
            actor=actor,
            action=Action.APPLICATION_DELETED,
            target_type="application",
            target_id=str(locked.client_id)[:64],
            details={"name": locked.name},
        )
        tokencache.invalidate_application(locked.pk)
        locked.delete()
