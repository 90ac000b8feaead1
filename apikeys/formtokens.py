"""One-time tokens for HTML forms whose POST makes a secret (issue a key, rotate it).

The response to such a POST is the page that shows the new secret once. Reloading it makes
the browser offer to send the form again; without a one-time token that would silently
issue a second key, or rotate again and kill the secret just copied. The form carries a
token handed out with it; the POST must bring back a token it was given, once. The admin
and the portal share this (tokens live in the user's session).
"""

from __future__ import annotations

import secrets

from django.http import HttpRequest

SESSION_KEY = "apikeys.form_tokens"
FIELD_NAME = "form_token"
# Forms open in several tabs at once each keep a valid token, up to this many.
MAX_TOKENS = 20


def issue_form_token(request: HttpRequest) -> str:
    """A new token for a form about to be rendered."""
    token = secrets.token_urlsafe(16)
    tokens = request.session.get(SESSION_KEY, [])[-(MAX_TOKENS - 1) :]
    request.session[SESSION_KEY] = [*tokens, token]
    return token


def consume_form_token(request: HttpRequest) -> bool:
    """True (once) when the POST carries a token :func:`issue_form_token` gave out."""
    token = request.POST.get(FIELD_NAME, "")
    tokens = request.session.get(SESSION_KEY, [])
    if not token or token not in tokens:
        return False
    tokens.remove(token)
    request.session[SESSION_KEY] = tokens
    return True
