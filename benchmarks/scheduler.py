"""The scheduler's costs, printed (never asserted): a quiet tick at 3,000 and 10,000
accounts, and the first round of 10,000 accounts against a stand-in vendor that
answers after 200 ms, under the default concurrency bounds.

    .venv/bin/python -m benchmarks.scheduler [--accounts 3000 10000] [--latency 0.2]

The vendor is the `_fetch` seam (no sockets), so what is measured is the scheduler
and the bounds, not HTTP; benchmarks/scale.py measures the whole exporter.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import httpx

from exporter import log
from exporter.config import AccountConfig, Config
from exporter.model import Readings
from exporter.poller import Poller
from exporter.providers import PROVIDERS
from exporter.redaction import Secret
from exporter.state import StateStore


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    def monotonic(self) -> float:
        return self.now


class _InstantPoller(Poller):
    async def _fetch(self, account: AccountConfig) -> Readings:
        return Readings()


class _SlowPoller(Poller):
    latency = 0.2

    async def _fetch(self, account: AccountConfig) -> Readings:
        await asyncio.sleep(self.latency)
        return Readings()


def _config(count: int, providers: tuple[str, ...]) -> Config:
    return Config(
        accounts=tuple(
            AccountConfig(
                providers[i % len(providers)],
                f"a{i}",
                Secret(f"bench_key_{i:08d}"),
                interval=300.0,
                timeout=5.0,
                max_staleness=900.0,
                adapter=PROVIDERS[providers[i % len(providers)]],
            )
            for i in range(count)
        )
    )


async def quiet_tick(count: int) -> float:
    """Seconds per tick with nothing due, after a first round."""
    clock = _Clock()
    async with httpx.AsyncClient() as client:
        poller = _InstantPoller(
            StateStore(), client, clock=clock.time, monotonic=clock.monotonic, rng=random.Random(0)
        )
        poller.apply_config(_config(count, ("pictory",)))
        for _ in range(200):  # the first round, a step at a time through the spread
            clock.now += 0.02
            poller.tick()
            await poller.drain()
        ticks = 5000
        started = time.perf_counter()
        for _ in range(ticks):
            clock.now += 0.001
            poller.tick()
        return (time.perf_counter() - started) / ticks


async def first_round(count: int, providers: tuple[str, ...], latency: float) -> float:
    """Wall-clock seconds until every account has been polled once."""
    _SlowPoller.latency = latency
    async with httpx.AsyncClient() as client:
        poller = _SlowPoller(StateStore(), client)
        started = time.monotonic()
        poller.apply_config(_config(count, providers))
        runner = asyncio.create_task(poller.run())
        await poller.first_round_done.wait()
        elapsed = time.monotonic() - started
        runner.cancel()
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[3000, 10000])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--skip-first-round", action="store_true")
    args = parser.parse_args()
    log.configure("error", "json")
    for count in args.accounts:
        print(f"{count:>6} accounts: quiet tick {asyncio.run(quiet_tick(count)) * 1e6:8.1f} us")
    if args.skip_first_round:
        return
    count = max(args.accounts)
    for label, providers in (("one vendor", ("pictory",)), ("five vendors", tuple(PROVIDERS))):
        seconds = asyncio.run(first_round(count, providers, args.latency))
        print(
            f"{count:>6} accounts, {label}, {args.latency * 1000:.0f} ms vendor:"
            f" first round {seconds:5.1f} s"
        )


if __name__ == "__main__":
    main()
