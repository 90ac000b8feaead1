"""Look for secrets where they must never be: every table of the database, sessions,
message cookies, the cache, and log records.

A scan reports what it looked at (tables, rows, cells, log lines) as well as what it found,
so a test can show that it really searched, and a positive control can show that it would
have found a secret had there been one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

KEY_PATTERN = re.compile(r"k_live_[0-9A-Za-z]{46}")


@dataclass
class Findings:
    """Where each secret was found, and how much was searched."""

    hits: list[str] = field(default_factory=list)
    tables: int = 0
    rows: int = 0
    cells: int = 0
    log_lines: int = 0

    def look(self, where: str, text: str, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if secret and secret in text:
                self.hits.append(f"{where}: {secret[:12]}…")


def _text(value: Any) -> str:
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def scan_database(secrets: list[str], findings: Findings) -> None:
    """Every row of every table of the default database, every column as text; sessions
    decoded (their data is signed base64, where a secret would not show as plain text)."""
    from django.contrib.sessions.backends.db import SessionStore

    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            findings.tables += 1
            cursor.execute(f"SELECT * FROM {quote(table)}")
            columns = [c[0] for c in cursor.description]
            for row in cursor.fetchall():
                findings.rows += 1
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    findings.cells += 1
                    text = _text(value)
                    findings.look(f"{table}.{column}", text, secrets)
                    if table == "django_session" and column == "session_data":
                        decoded = SessionStore().decode(text)
                        findings.look("django_session (decoded)", repr(decoded), secrets)


def scan_cache(secrets: list[str], findings: Findings) -> None:
    """The default cache's raw entries (local memory, or this test run's Redis keys)."""
    from django.core.cache import cache

    blobs: list[bytes] = []
    store = getattr(cache, "_cache", None)
    if isinstance(store, dict):  # LocMemCache: pickled values
        blobs += [repr(k).encode() + b" " + bytes(v) for k, v in store.items()]
    elif hasattr(store, "get_client"):  # Django's RedisCache
        client = store.get_client()
        for key in client.scan_iter(match=f"{cache.key_prefix}*"):
            blobs.append(key + b" " + (client.get(key) or b""))
    for blob in blobs:
        for secret in secrets:
            if secret and secret.encode() in blob:
                findings.hits.append(f"cache: {secret[:12]}…")


def scan_cookies(cookies: Any, secrets: list[str], findings: Findings) -> None:
    """Cookies a test client holds, the messages cookie decoded."""
    from django.contrib.messages.storage.cookie import CookieStorage
    from django.http import HttpRequest

    storage = CookieStorage(HttpRequest())
    for name, morsel in cookies.items():
        findings.look(f"cookie {name}", morsel.value, secrets)
        if name == storage.cookie_name:
            decoded = storage._decode(morsel.value) or []
            findings.look("messages cookie (decoded)", " ".join(str(m) for m in decoded), secrets)


class RecordingHandler(logging.Handler):
    """Keeps every record, formatted with its exception and its arguments."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        extras = {
            k: v
            for k, v in record.__dict__.items()
            if k not in logging.LogRecord("", 0, "", 0, "", (), None).__dict__
        }
        self.lines.append(f"{text} args={record.args!r} extra={extras!r}")


@contextmanager
def recording_every_log_line() -> Iterator[RecordingHandler]:
    """Every log record of every logger at DEBUG, SQL statements with their parameters
    included (``force_debug_cursor``): a secret sent to the database in a query would be
    caught here even if no column kept it."""
    handler = RecordingHandler()
    root = logging.getLogger()
    previous_level = root.level
    previous_force = connection.force_debug_cursor
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    levels = [(lg, lg.level, lg.disabled) for lg in loggers if isinstance(lg, logging.Logger)]
    for lg, _, _ in levels:
        lg.disabled = False
        if lg.level > logging.DEBUG:
            lg.setLevel(logging.DEBUG)
    connection.force_debug_cursor = True
    try:
        yield handler
    finally:
        connection.force_debug_cursor = previous_force
        root.removeHandler(handler)
        root.setLevel(previous_level)
        for lg, level, disabled in levels:
            lg.setLevel(level)
            lg.disabled = disabled


def scan_lines(
    lines: list[str], secrets: list[str], findings: Findings, where: str = "log"
) -> None:
    for line in lines:
        findings.log_lines += 1
        findings.look(where, line, secrets)
