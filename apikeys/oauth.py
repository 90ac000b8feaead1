"""django-oauth-toolkit integration: an application's tokens carry only its granted scopes,
and a leaked client secret can be cut off.

Set in ``OAUTH2_PROVIDER``: ``SCOPES_BACKEND_CLASS`` (:class:`GrantedScopes`),
``OAUTH2_VALIDATOR_CLASS`` (:class:`ManagementOAuth2Validator`) and ``CLIENT_SECRET_HASHER``
(``"apikeys_client_hmac"``, :mod:`apikeys.hashers`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any
from urllib.parse import unquote_plus

from django.contrib.auth.hashers import get_hasher, identify_hasher, make_password
from django.utils.crypto import constant_time_compare
from oauth2_provider.models import get_access_token_model, get_application_model
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.scopes import BaseScopes
from oauth2_provider.settings import oauth2_settings

from apikeys.hashers import ALGORITHM, ClientSecretHasher
from apikeys.models import MANAGEMENT_SCOPES, M2MGrant


def granted_scopes(application: Any) -> list[str]:
    """The Management API scopes granted to ``application`` (none without a grant)."""
    grant = None if application is None else _grant_of(application)
    if grant is None:
        return []
    return [s for s in grant.scope_list if s in MANAGEMENT_SCOPES]


class GrantedScopes(BaseScopes):
    """Scopes backend: every scope is one of ``MANAGEMENT_SCOPES``; an application may ask
    for any subset of its grant (more is ``invalid_scope``), and gets the whole grant when it
    asks for nothing."""

    def get_all_scopes(self) -> dict[str, str]:
        return dict(MANAGEMENT_SCOPES)

    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        return granted_scopes(application)

    def get_default_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        return granted_scopes(application)


# --------------------------------------------------------------------------- validator


def basic_credentials(encoded: str) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` from the part of an HTTP Basic header after ``Basic``:
    base64 of ``id:secret``, each half form-encoded (RFC 6749 §2.3.1), as
    django-oauth-toolkit reads it; ``None`` when it is not that."""
    try:
        decoded = base64.b64decode(encoded).decode("utf-8")
        client_id, client_secret = map(unquote_plus, decoded.split(":", 1))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return client_id, client_secret


# The digest compared against when the client id is unknown: the same work as a wrong secret
# of a known client, so timing does not tell which client ids exist.
_NO_CLIENT = f"{ALGORITHM}${'0' * 64}"


class ManagementOAuth2Validator(OAuth2Validator):
    """django-oauth-toolkit's validator (``OAUTH2_PROVIDER["OAUTH2_VALIDATOR_CLASS"]``), with
    the rules that let a leaked client secret be cut off:

    - client authentication costs one query (the application with its grant) and one keyed
      digest whether the client id exists or not, and a wrong secret for a known client
      costs the same as an unknown client (no timing oracle for client ids);
    - a secret still stored with another hasher (Argon2, before ``CLIENT_SECRET_HASHER``
      named ours) is checked with that hasher once more and, when correct, stored again with
      the configured one, so every application moves to the fast digest on its next token;
    - a disabled application gets no token (``invalid_client``), and the tokens it holds are
      refused on their next request (401);
    - a token's effective scopes are its own scopes that its application is *still* granted,
      so narrowing a grant narrows the tokens already issued at once.

    The application and its grant come in the same query as the token (``select_related``),
    so these checks cost no extra query on the Management API's hot path.
    """

    def authenticate_client(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        credentials = self._presented_credentials(request)
        if credentials is None:
            return False
        client_id, client_secret = credentials
        client = self._load_client(client_id)
        if client is None:
            # Same work as a wrong secret of a known client; the answer is False either way.
            _FAST.verify(client_secret, _NO_CLIENT)
            return False
        if not self._check_client_secret(client, client_secret):
            return False
        grant = _grant_of(client)
        if grant is not None and not grant.is_active:
            return False
        request.client = client
        return True

    def _presented_credentials(self, request: Any) -> tuple[str, str] | None:
        """``(client_id, client_secret)`` from HTTP Basic (preferred, RFC 6749 §2.3.1), else
        from the body; ``None`` when neither carries both. Basic is decoded as
        django-oauth-toolkit does (base64, then form-decoding of each half)."""
        auth = self._extract_basic_auth(request)
        if auth:
            return basic_credentials(auth)
        client_id = getattr(request, "client_id", None)
        client_secret = getattr(request, "client_secret", None)
        if not client_id or not client_secret:
            return None
        return str(client_id), str(client_secret)

    @staticmethod
    def _load_client(client_id: str) -> Any:
        Application = get_application_model()
        try:
            return (
                Application.objects.select_related("m2m_grant").filter(client_id=client_id).first()
            )
        except ValueError:
            # A NUL byte in the id: PostgreSQL drivers refuse it before querying. No client
            # id of ours has one.
            return None

    @staticmethod
    def _check_client_secret(client: Any, presented: str) -> bool:
        stored = client.client_secret or ""
        try:
            hasher = identify_hasher(stored)
        except ValueError:
            # Stored in clear (hash_client_secret off): django-oauth-toolkit's own fallback.
            return constant_time_compare(presented, stored)
        if hasher.algorithm == ALGORITHM:
            return _FAST.verify(presented, stored)
        if not hasher.verify(presented, stored):
            return False
        wanted = get_hasher(oauth2_settings.CLIENT_SECRET_HASHER)
        if wanted.algorithm != hasher.algorithm:
            # Re-hash with the configured hasher, only if nobody changed the secret meanwhile
            # (a regeneration in between must win).
            rehashed = make_password(presented, hasher=wanted)
            type(client).objects.filter(pk=client.pk, client_secret=stored).update(
                client_secret=rehashed
            )
            client.client_secret = rehashed
        return True

    def _load_access_token(self, token: str) -> Any:
        """The token with its application and grant in one query; ``None`` (so 401) when its
        application is gone or disabled, and its ``scope`` narrowed to what the application
        is still granted. The narrowing is in memory only: nothing saves this instance."""
        checksum = hashlib.sha256(token.encode("utf-8")).hexdigest()
        access_token = (
            get_access_token_model()
            .objects.select_related("application__m2m_grant", "user")
            .filter(token_checksum=checksum)
            .first()
        )
        if access_token is None or access_token.application is None:
            return None
        grant = _grant_of(access_token.application)
        if grant is not None and not grant.is_active:
            return None
        still_granted = set(granted_scopes(access_token.application))
        access_token.scope = " ".join(s for s in access_token.scope.split() if s in still_granted)
        return access_token


_FAST = ClientSecretHasher()


def _grant_of(application: Any) -> M2MGrant | None:
    # The reverse one-to-one raises an AttributeError subclass when there is no grant.
    return getattr(application, "m2m_grant", None)
