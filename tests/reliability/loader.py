"""A bounded load generator on loopback: N verifications from C concurrent clients.

Each client is a thread making its share of the requests one after another, each on a fresh
connection (gunicorn's sync workers close every connection), and recording when the request
started and ended (``time.monotonic``, one clock for every thread), what it sent and what
came back. The number of requests is fixed up front and every socket has a timeout, so a
storm always ends.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.servers import HOST, REQUEST_TIMEOUT, Service

VERIFY_PATH = "/api/v1/api_keys/verify"


@dataclass(frozen=True)
class Outcome:
    """One request of a storm."""

    client: int
    label: str  # which secret was sent ("old", "new", "wrong", ...)
    started: float
    ended: float
    status: int  # 0: no HTTP answer at all (connection refused or reset)
    body: dict[str, Any] | None
    headers: dict[str, str]

    @property
    def code(self) -> str | None:
        if self.body is None:
            return None
        if "errors" in self.body:
            return str(self.body["errors"][0]["code"])
        return self.body.get("code")

    @property
    def is_valid(self) -> bool:
        return bool(self.status == 200 and self.body and self.body.get("is_valid") is True)


def verify_once(port: int, token: str, key: str, client: int, label: str) -> Outcome:
    payload = json.dumps({"api_key": key}).encode()
    started = time.monotonic()
    connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request(
            "POST",
            VERIFY_PATH,
            body=payload,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        answer = connection.getresponse()
        raw = answer.read()
        headers = {k.lower(): v for k, v in answer.getheaders()}
        status = answer.status
    except (OSError, http.client.HTTPException):
        # No (whole) HTTP answer: refused, reset, or cut short by a worker killed mid-answer.
        return Outcome(client, label, started, time.monotonic(), 0, None, {})
    finally:
        connection.close()
    try:
        body = json.loads(raw)
    except ValueError:
        body = {"not_json": raw[:200].decode("utf-8", "replace")}
    return Outcome(client, label, started, time.monotonic(), status, body, headers)


class Storm:
    """``total`` verifications from ``clients`` threads; ``choose(client, n)`` picks the
    (label, key) of each request when it starts, so a storm can switch secrets mid-way."""

    def __init__(
        self,
        service: Service,
        *,
        total: int,
        clients: int,
        tokens: list[str],
        choose: Callable[[int, int], tuple[str, str]],
    ) -> None:
        self.service = service
        self.total = total
        self.clients = clients
        self.tokens = tokens
        self.choose = choose
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._threads = [
            threading.Thread(target=self._client, args=(c,), daemon=True) for c in range(clients)
        ]

    def _client(self, client: int) -> None:
        token = self.tokens[client % len(self.tokens)]
        share = range(client, self.total, self.clients)
        for n, _ in enumerate(share):
            label, key = self.choose(client, n)
            outcome = verify_once(self.service.port, token, key, client, label)
            with self._done:
                self.outcomes.append(outcome)
                self._done.notify_all()

    def start(self) -> Storm:
        for thread in self._threads:
            thread.start()
        return self

    def wait_until(self, completed: int, timeout: float = 600.0) -> None:
        """Block until at least ``completed`` requests have answered."""
        with self._done:
            if not self._done.wait_for(lambda: len(self.outcomes) >= completed, timeout=timeout):
                raise TimeoutError(f"only {len(self.outcomes)} of {completed} requests answered")

    def join(self, timeout: float = 900.0) -> list[Outcome]:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise TimeoutError("a load client did not finish")
        assert len(self.outcomes) == self.total
        return list(self.outcomes)


def run_storm(service: Service, **kwargs: Any) -> list[Outcome]:
    return Storm(service, **kwargs).start().join()
