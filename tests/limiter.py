"""Test helper: make the rate limiter's storage unreachable, as a Redis outage would."""

from __future__ import annotations

from typing import Any


class _Unreachable:
    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("limiter storage down")

        return fail


def break_limiter(monkeypatch: Any) -> None:
    """Every call of the limiter (hit, test, clear, window stats) raises ConnectionError."""
    from apikeys import ratelimit

    monkeypatch.setattr(ratelimit, "limiter", lambda: _Unreachable())
