"""Secrets never reach a log: the redacting filter of every log record the project writes.

Rules:

- Every record that reaches the project's handlers (``LOGGING`` in project/settings.py: the
  console handler, which Django's ``django.request`` and every other logger propagate to, and
  runserver's ``django.server`` handler) and gunicorn's loggers passes
  :class:`RedactSecretsFilter`.
- The message is formatted first and then redacted, so an argument cannot smuggle a secret
  past it (``logger.warning("Not Found: %s", path)``); the exception text and the stack are
  redacted too. A record with nothing to redact is left as it was.
- What is redacted, wherever it stands in the text:

  - anything key-shaped: ``k_live_`` and the base62 run after it (:data:`crypto.KEY_SHAPED`,
    the pattern API error bodies use too);
  - a webhook signing secret: ``whsec_`` and the base64 after it;
  - a portal link's token: the path segment after ``/portal/link/`` (plain or
    percent-encoded), since the link is in the URL of its request (and in the ``Referer``
    of the next one);
  - the value of a named credential, as ``name=value`` (a query string, a form) or
    ``"name": value`` (a dict's ``repr``, JSON): ``client_secret``, ``access_token``,
    ``refresh_token``, ``id_token``, ``token``, ``api_key``, ``password``, ``secret``;
  - the credentials of an ``Authorization`` value: ``Bearer …``, ``Basic …``.

- gunicorn's own loggers (``gunicorn.error``, ``gunicorn.access``) are not configured by
  Django's ``LOGGING``: :func:`install_on_gunicorn` puts the filter on those loggers
  themselves, so every handler gunicorn gives them (a file, stderr, syslog, a config reload's
  new ones) gets redacted records. project/wsgi.py calls it when a worker loads the project.

Objects attached to a record (Django's ``request`` on ``django.request`` records) are left
alone: no handler of the project writes them.
"""

from __future__ import annotations

import logging
import re

from apikeys import crypto

REDACTED = "[redacted]"

# Names whose value is a credential: ``name=value`` (a query string, a form; ``=`` maybe
# percent-encoded) or a quoted ``"name": value`` (``repr`` of a dict, JSON). Prose such as
# "invalid token: expired" is left alone. The look-behind keeps ``form_token`` or
# ``client_secret`` from matching as ``token`` or ``secret`` (each has its own entry where
# it is one).
_CREDENTIAL_NAMES = (
    "client_secret",
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "api_key",
    "password",
    "secret",
)
_NAME = r"(?<![A-Za-z0-9_])(?P<name>" + "|".join(_CREDENTIAL_NAMES) + r")"
# A quoted value, whole up to its closing quote (it may hold spaces).
_CREDENTIAL_QUOTED = re.compile(
    _NAME + r"(?P<separator>[\"']\s*:\s*(?P<quote>[\"']))(?P<value>.*?)(?P=quote)",
    re.IGNORECASE,
)
_CREDENTIAL_PARAMETER = re.compile(
    _NAME + r"(?P<separator>=|%3[dD]|[\"']\s*:\s*)(?P<value>[^\s&\"',;)}\]]+)",
    re.IGNORECASE,
)
# The credentials after an HTTP authentication scheme. Eight characters at least, so that
# prose such as "basic auth" is left alone; real tokens and Basic credentials are longer.
_AUTHORIZATION = re.compile(
    r"(?P<scheme>\b(?:Bearer|Basic)\s+)(?P<value>[A-Za-z0-9._~+/=-]{8,})", re.IGNORECASE
)
# A portal link's token: the segment after /portal/link/ (its slashes maybe percent-encoded,
# as in a ``next=`` parameter).
_PORTAL_LINK_TOKEN = re.compile(
    r"(?P<path>portal(?:/|%2[fF])link(?:/|%2[fF]))(?P<value>[^/?#&\s\"'%]+)"
)


_WEBHOOK_SECRET = re.compile(re.escape(crypto.WEBHOOK_SECRET_PREFIX) + r"[A-Za-z0-9+/=]+")


# Each pattern runs only when what it needs is in the text: most lines (an access-log line
# of a verification) have none of it, and a substring test is far cheaper than a regex scan.
_CREDENTIAL_TRIGGERS = tuple(
    name + separator
    for name in ("token", "secret", "password", "api_key")
    for separator in ("=", "%3d", '"', "'")
)


def redact_secrets(text: str) -> str:
    """``text`` with every key, portal link token and named credential replaced."""
    if crypto.KEY_PREFIX in text:
        text = crypto.redact_keys(text)
    if crypto.WEBHOOK_SECRET_PREFIX in text:
        text = _WEBHOOK_SECRET.sub(crypto.WEBHOOK_SECRET_PREFIX + REDACTED, text)
    lowered = text.lower()
    if "portal/link" in lowered or "portal%2flink" in lowered:
        text = _PORTAL_LINK_TOKEN.sub(r"\g<path>" + REDACTED, text)
    if "bearer" in lowered or "basic" in lowered:
        text = _AUTHORIZATION.sub(r"\g<scheme>" + REDACTED, text)
    if any(trigger in lowered for trigger in _CREDENTIAL_TRIGGERS):
        text = _CREDENTIAL_QUOTED.sub(r"\g<name>\g<separator>" + REDACTED + r"\g<quote>", text)
        text = _CREDENTIAL_PARAMETER.sub(r"\g<name>\g<separator>" + REDACTED, text)
    return text


# Formats a record's exception the way logging.Formatter does by default; the text is
# cached on the record (exc_text), which formatters use instead of formatting it again.
_EXCEPTION_FORMATTER = logging.Formatter()


def redact_record(record: logging.LogRecord) -> None:
    """Rewrite ``record`` in place so that no handler can write a secret from it."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format must not reach handleError's dump of args
        message = f"{record.msg!s} (log arguments: {record.args!r})"
        record.msg, record.args = redact_secrets(message), None
    else:
        redacted = redact_secrets(message)
        if redacted != message:
            # The formatted, redacted text replaces the template and its arguments.
            record.msg, record.args = redacted, None
    if record.exc_info and not record.exc_text:
        record.exc_text = _EXCEPTION_FORMATTER.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact_secrets(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_secrets(record.stack_info)


class RedactSecretsFilter(logging.Filter):
    """A logging filter that lets every record through, with its secrets redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


GUNICORN_LOGGERS = ("gunicorn.error", "gunicorn.access")


def install_on_gunicorn() -> None:
    """Put the filter on gunicorn's loggers (once): their records never go through Django's
    ``LOGGING`` handlers. Harmless outside gunicorn (the loggers are then unused)."""
    for name in GUNICORN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecretsFilter) for f in logger.filters):
            logger.addFilter(RedactSecretsFilter())
