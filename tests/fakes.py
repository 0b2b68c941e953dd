"""Test doubles for the narrow unit tests: a settable clock, a scripted vendor and
ready-made account states.

The behaviour tests talk to real sockets (tests/support/processes.py,
tests/support/simulator.py); these are for driving the poller's scheduling deterministically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from exporter.model import AlertPolicy, Readings
from exporter.providers import PROVIDERS
from exporter.state import AccountState


@dataclass
class FakeClock:
    """Wall-clock and monotonic time that only move when a test says so."""

    now: float = 1_800_000_000.0
    start: float = 1_800_000_000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now - self.start

    def advance(self, seconds: float) -> None:
        self.now += seconds


Responder = Callable[[httpx.Request], httpx.Response]


@dataclass
class ScriptedVendor:
    """An httpx.MockTransport whose answer per URL path a test can change."""

    answers: dict[str, Responder] = field(default_factory=dict)
    calls: list[tuple[float, str]] = field(default_factory=list)
    clock: FakeClock | None = None

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        when = self.clock.now if self.clock else 0.0
        self.calls.append((when, request.url.path))
        responder = self.answers.get(request.url.path)
        if responder is None:
            return httpx.Response(404, json={"error": "no such path"})
        answer = responder(request)
        # An httpx.Response built from content is read (and decoded) at once; the
        # poller reads the raw stream as a real transport gives it, so hand it that.
        return httpx.Response(answer.status_code, headers=answer.headers, stream=answer.stream)

    def count(self, path: str) -> int:
        return sum(1 for _, p in self.calls if p == path)

    def times(self, path: str) -> list[float]:
        return [t for t, p in self.calls if p == path]


def ok_json(body: object, headers: dict[str, str] | None = None) -> Responder:
    return lambda _request: httpx.Response(200, json=body, headers=headers)


def status(code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Responder:
    return lambda _request: httpx.Response(code, content=body, headers=headers)


def up_state(
    provider: str, account: str, readings: Readings, now: float, **fields: Any
) -> AccountState:
    """An account polled every 5 min whose last poll succeeded 30 s before `now`;
    `fields` override any other AccountState field. Its alert settings are its
    adapter's defaults, as the poller sets them for an account without `alerts:`."""
    adapter = PROVIDERS.get(provider)
    state = AccountState(
        provider=provider,
        account=account,
        interval=300.0,
        max_staleness=900.0,
        up=True,
        polled=True,
        readings=readings,
        last_success=now - 30,
        alerts=AlertPolicy(adapter=adapter.alert_defaults if adapter else ()),
    )
    return replace(state, **fields)
