"""A real HTTP receiver on loopback, in a thread: what a platform's webhook endpoint is.

``Receiver(answers=[500, 500, 500])`` answers the first requests with those statuses and
200 afterwards; ``hold`` keeps every request waiting until ``release()`` (a delivery in
flight); every request is kept (headers, body) for the test to verify.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from standardwebhooks import Webhook


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def verified(self, secret: str) -> Any:
        """The payload, after standardwebhooks checked its signature (raises if wrong)."""
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    def __init__(self, *, answers: list[int] | None = None, hold: bool = False) -> None:
        self.answers = list(answers or [])
        self.received: list[Received] = []
        self.gate = threading.Event()
        if not hold:
            self.gate.set()
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver.arrived:
                    receiver.received.append(
                        Received(headers={k.lower(): v for k, v in self.headers.items()}, body=body)
                    )
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.arrived.notify_all()
                receiver.gate.wait(60)
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        self.gate.set()

    def wait_for(self, count: int, timeout: float = 60) -> list[Received]:
        """Block until ``count`` requests arrived (a ceiling, never asserted on)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.received)} of {count} requests arrived")
                self.arrived.wait(left)
            return list(self.received)
