"""One-time form tokens in tests (see ``apikeys.formtokens``)."""

from __future__ import annotations

from typing import Any

from django.test import Client

from apikeys.formtokens import FIELD_NAME, SESSION_KEY


def grant_form_token(client: Any) -> str:
    """A one-time form token in ``client``'s session, as a rendered issue/rotate form holds."""
    session = client.session
    tokens = session.get(SESSION_KEY, [])
    token = f"test-form-token-{len(tokens)}"
    session[SESSION_KEY] = [*tokens, token]
    session.save()
    return token


class FormTokenClient(Client):
    """A test client that posts forms like a browser that loaded them first: a form POST
    without a one-time token gets a fresh one. (JSON posts are left alone.)"""

    def post(self, path: str, data: Any = None, *args: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and FIELD_NAME not in data and "content_type" not in kwargs:
            data = {**data, FIELD_NAME: grant_form_token(self)}
        return super().post(path, data, *args, **kwargs)
