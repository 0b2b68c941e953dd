"""Vendor faults against a real local HTTP server (the simulator), not a mock.

The real Poller with a real httpx client talks to the simulator over loopback; only
the scheduling clock is injected, so "no request before Retry-After elapsed" can be
checked exactly. Every fault must leave: saas_quota_up 0, the right reason counter,
the last good values until max_staleness, and one log event naming provider,
account, HTTP status and a body excerpt, never the key.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import random
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from exporter import log
from exporter.config import AccountConfig, parse_config
from exporter.families import families
from exporter.model import Reason
from exporter.poller import Poller
from exporter.providers import PROVIDERS
from exporter.redaction import REDACTOR, Secret
from exporter.state import AccountState, StateStore
from exporter.transport import make_client
from tests.fakes import FakeClock
from tests.support.config import account_at, config_text
from tests.support.simulator import Fault, SimAccount, SimMeter, VendorSimulator

pytestmark = pytest.mark.anyio

KEYS = {
    "pictory": "pictai_fault_key_0001",
    "tornado": "sk_fault_key_tornado_0002",
    "piloterr": "piloterr-fault-key-0003",
    "vidnavigator": "vidnav-fault-key-0004",
    "vertaaux": "vx_live_fault_key_0005",
}
MIB = 1024 * 1024


@pytest.fixture
def simulator() -> Iterator[VendorSimulator]:
    accounts = [
        SimAccount("pictory", KEYS["pictory"], {"video_minutes": SimMeter(limit=100, start=10)}),
        SimAccount(
            "tornado",
            KEYS["tornado"],
            {"storage_gb": SimMeter(limit=10, start=1), "jobs": SimMeter(limit=None, start=5)},
        ),
        SimAccount("piloterr", KEYS["piloterr"], {"api_credits": SimMeter(limit=100, start=40)}),
        SimAccount(
            "vidnavigator",
            KEYS["vidnavigator"],
            {"credits": SimMeter(limit=80, start=8), "storage_gb": SimMeter(limit=5)},
        ),
        SimAccount("vertaaux", KEYS["vertaaux"], {"credits": SimMeter(limit=1000, start=47)}),
    ]
    with VendorSimulator(accounts) as sim:
        yield sim


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    log.configure("debug", "json", stream=buffer)
    yield buffer
    log.configure()


@dataclass
class Rig:
    poller: Poller
    clock: FakeClock
    sim: VendorSimulator
    logs: io.StringIO
    config_text: str

    async def step(self, seconds: float, stride: float = 1.0) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.poller.tick()
            await self.poller.drain()
            self.clock.advance(stride)

    def state(self, provider: str) -> AccountState:
        state = self.poller.store.get((provider, "acct"))
        assert state is not None
        return state

    def events(self, event: str) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.logs.getvalue().splitlines() if line]
        return [line for line in lines if line.get("event") == event]

    def exported(self, provider: str, name: str = "saas_quota_used") -> list[float]:
        return [
            s.value
            for family in families(self.poller.store.snapshot(), self.clock.time())
            for s in family.samples
            if s.name == name and s.labels.get("provider") == provider
        ]


@pytest.fixture
async def rig(simulator: VendorSimulator, logs: io.StringIO) -> AsyncIterator[Rig]:
    accounts = [account_at(simulator, provider, "acct", key) for provider, key in KEYS.items()]
    text = config_text(accounts, interval="60s", timeout="1s", max_staleness="5m")
    clock = FakeClock(now=time.time(), start=time.time())
    async with make_client() as client:
        poller = Poller(
            StateStore(),
            client,
            clock=clock.time,
            monotonic=clock.monotonic,
            rng=random.Random(3),
        )
        poller.apply_config(parse_config(text))
        rig = Rig(poller, clock, simulator, logs, text)
        await rig.step(1)
        for provider in KEYS:
            assert rig.state(provider).up, rig.state(provider).last_error
        yield rig


@dataclass(frozen=True)
class Case:
    provider: str
    fault: Fault
    reason: Reason
    status: int | None
    excerpt: str  # expected in the log event's body excerpt or error text


CASES = {
    "hang": Case("pictory", Fault(delay=3.0), Reason.TIMEOUT, None, "no complete answer"),
    "connection_reset": Case("tornado", Fault(reset=True), Reason.NETWORK, None, "Error"),
    "5xx_html": Case(
        "piloterr",
        Fault(
            502,
            b"<html><body><h1>502 Bad Gateway</h1></body></html>",
            {"Content-Type": "text/html"},
        ),
        Reason.SERVER,
        502,
        "502 Bad Gateway",
    ),
    "truncated_json": Case(
        "vertaaux",
        Fault(200, b'{"plan": "pro", "credits_total": 10'),
        Reason.PARSE,
        200,
        '{"plan": "pro", "credits_total": 10',
    ),
    "wrong_types": Case(
        "pictory",
        Fault(200, b'{"videoMinutes": [1, 2], "aiCredits": "many"}'),
        Reason.PARSE,
        200,
        "",
    ),
    "huge_body": Case(
        "vidnavigator",
        Fault(200, stream_bytes=64 * MIB),
        Reason.PARSE,
        None,
        "larger than 1048576 bytes",
    ),
    "401": Case(
        "tornado", Fault(401, b'{"error": "Invalid API Key"}'), Reason.AUTH, 401, "Invalid API Key"
    ),
    "402": Case(
        "piloterr",
        Fault(402, b'{"error": "Payment required"}'),
        Reason.PAYMENT,
        402,
        "Payment required",
    ),
    "403": Case(
        "vertaaux",
        Fault(403, b'{"error": "forbidden", "message": "IP not allowed"}'),
        Reason.FORBIDDEN,
        403,
        "IP not allowed",
    ),
    "piloterr_key_quota_401": Case(
        "piloterr",
        Fault(401, b'{"error": "Rate limit exceeded for the API key: quota monthly"}'),
        Reason.RATE_LIMITED,
        401,
        "quota monthly",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_fault_keeps_serving_last_good_values(rig: Rig, name: str) -> None:
    case = CASES[name]
    good = rig.exported(case.provider)
    assert good, "the good poll exported values"
    rig.sim.set_fault(KEYS[case.provider], case.fault)
    started = time.monotonic()
    await rig.step(70)  # one more poll of every account
    took = time.monotonic() - started
    state = rig.state(case.provider)
    assert not state.up
    assert state.error_count(case.reason) >= 1, state.last_error
    assert state.last_error_reason is case.reason
    # Last good values still exported, never zeros, while within max_staleness.
    assert rig.exported(case.provider) == good
    assert rig.exported(case.provider, "saas_quota_up") == [0.0]
    # The other accounts were not touched.
    for other in KEYS:
        if other != case.provider:
            assert rig.state(other).up, other
    # One log event per failed poll, with what an operator needs and no key.
    events = [e for e in rig.events("poll failed") if e["provider"] == case.provider]
    assert len(events) == state.consecutive_failures
    event = events[0]
    assert event["account"] == "acct"
    assert event["reason"] == case.reason.value
    assert event["status"] == case.status
    assert case.excerpt in (event.get("body") or "") + event["error"]
    assert KEYS[case.provider] not in rig.logs.getvalue()
    if name == "hang":
        assert took < 10, "the timeout bounds a hanging vendor"
    # Past max_staleness the values go, the bookkeeping stays.
    await rig.step(400, stride=10)
    assert rig.exported(case.provider) == []
    assert rig.exported(case.provider, "saas_quota_up") == [0.0]


async def test_huge_body_is_not_read_past_the_cap(rig: Rig) -> None:
    rig.sim.set_fault(KEYS["vidnavigator"], Fault(200, stream_bytes=64 * MIB))
    await rig.step(70)
    assert rig.state("vidnavigator").last_error_reason is Reason.PARSE
    # The vendor got to send the cap plus what socket buffers took, not 64 MiB.
    streamed = await asyncio.to_thread(rig.sim.wait_for_streams, 1, 10.0)
    assert streamed, "the vendor was still sending 10 s after the poll gave up"
    assert max(streamed) < 16 * MIB


async def test_retry_after_holds_off_every_request(rig: Rig) -> None:
    key = KEYS["vertaaux"]
    rig.sim.set_fault(
        key,
        Fault(
            429, b'{"error": "rate_limit_exceeded", "message": "slow down"}', {"Retry-After": "900"}
        ),
    )
    await rig.step(70)
    assert rig.state("vertaaux").last_error_reason is Reason.RATE_LIMITED
    limited_at = rig.state("vertaaux").last_poll_end
    assert limited_at is not None
    count = rig.sim.request_count(key)
    rig.sim.set_fault(key, None)
    await rig.step(limited_at + 895 - rig.clock.now, stride=5)
    assert rig.sim.request_count(key) == count, "no request before Retry-After elapsed"
    await rig.step(20)
    assert rig.sim.request_count(key) == count + 1
    assert rig.state("vertaaux").up


async def test_vidnavigator_key_ban_is_respected(rig: Rig) -> None:
    """A 429 bans the key for a minute: even with a 10 s interval we wait 60 s."""
    key = KEYS["vidnavigator"]
    text = config_text(
        [account_at(rig.sim, "vidnavigator", "acct", key)], interval="10s", timeout="1s"
    )
    rig.poller.apply_config(parse_config(text))
    await rig.step(1)
    rig.sim.set_fault(
        key,
        Fault(
            429,
            b'{"status": "error", "error": "rate_limit_exceeded",'
            b' "message": "blocked for 60 seconds"}',
        ),
    )
    await rig.step(12)
    banned_at = rig.clock.now
    count = rig.sim.request_count(key)
    rig.sim.set_fault(key, None)
    while rig.sim.request_count(key) == count:
        await rig.step(1)
    assert rig.clock.now - banned_at >= 60 - 12


async def test_recovery_is_logged_and_up_returns(rig: Rig) -> None:
    rig.sim.set_fault(KEYS["pictory"], Fault(500, b"oops"))
    await rig.step(70)
    assert not rig.state("pictory").up
    rig.sim.set_fault(KEYS["pictory"], None)
    await rig.step(400, stride=5)
    assert rig.state("pictory").up
    assert rig.state("pictory").consecutive_failures == 0
    assert [e["provider"] for e in rig.events("poll recovered")] == ["pictory"]


# --- compressed answers: decoded here, a bounded step at a time -----------------------

PICTORY_BODY = (
    b'{"videoMinutes": {"used": 10, "limit": 100}, "aiCredits": {"used": 1, "limit": 50}}'
)


def gzip_bomb(size: int) -> bytes:
    """`size` zero bytes gzip-compressed, built a MiB at a time (a 256 MiB bomb is
    about 250 KB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MIB)
    parts = [packer.compress(block) for _ in range(size // MIB)]
    return b"".join([*parts, packer.flush()])


async def test_a_gzip_bomb_costs_no_memory_and_is_a_parse_error(rig: Rig) -> None:
    bomb = gzip_bomb(256 * MIB)
    assert len(bomb) < MIB // 2
    rig.sim.set_fault(KEYS["pictory"], Fault(200, bomb, {"Content-Encoding": "gzip"}))
    tracemalloc.start()
    try:
        await rig.step(70)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    state = rig.state("pictory")
    assert state.last_error_reason is Reason.PARSE
    assert "larger than 1048576 bytes" in (state.last_error or "")
    # httpx inflated a whole 64 KiB network chunk at once (about 64 MiB of zeros);
    # decoding in DECODE_STEP pieces keeps the peak near the 1 MiB cap.
    assert peak < 16 * MIB, f"peak {peak / MIB:.1f} MiB while reading a gzip bomb"


@pytest.mark.parametrize(
    ("encoding", "body", "says"),
    [
        ("gzip", b'{"not": "gzip at all"}', "not valid gzip"),
        ("x-gzip", b"\x1f\x8b\x08\x00garbage", "not valid x-gzip"),
        ("deflate", b"\x00\x01\x02\x03 not deflate", "not valid deflate"),
        ("gzip", gzip.compress(PICTORY_BODY, mtime=0)[:-12], "truncated"),
        ("br", b"\x0b\x02\x80{}\x03", "Content-Encoding 'br'"),
        ("zstd", b"(\xb5/\xfd\x00\x00", "Content-Encoding 'zstd'"),
        ("gzip, compress", gzip.compress(PICTORY_BODY, mtime=0), "Content-Encoding 'compress'"),
    ],
)
async def test_a_body_that_is_not_what_its_encoding_says_is_a_parse_error(
    rig: Rig, encoding: str, body: bytes, says: str
) -> None:
    """Before: httpx.DecodingError escaped the poll and the account was never due again."""
    key = KEYS["pictory"]
    rig.sim.set_fault(key, Fault(200, body, {"Content-Encoding": encoding}))
    await rig.step(70)
    state = rig.state("pictory")
    assert state.last_error_reason is Reason.PARSE, state.last_error
    assert says in (state.last_error or "")
    # Still scheduled: the vendor fixes its answer and the next poll sees it.
    rig.sim.set_fault(key, None)
    await rig.step(70)
    assert rig.state("pictory").up


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(PICTORY_BODY, mtime=0)),
        ("x-gzip", gzip.compress(PICTORY_BODY, mtime=0)),
        ("GZIP, identity", gzip.compress(PICTORY_BODY, mtime=0)),
        # Two gzip members back to back are one valid gzip body (RFC 1952).
        (
            "gzip",
            gzip.compress(PICTORY_BODY[:20], mtime=0) + gzip.compress(PICTORY_BODY[20:], mtime=0),
        ),
        ("deflate", zlib.compress(PICTORY_BODY)),
        ("deflate", zlib.compress(PICTORY_BODY, wbits=-zlib.MAX_WBITS)),  # raw deflate
        ("deflate, gzip", gzip.compress(zlib.compress(PICTORY_BODY), mtime=0)),
    ],
)
async def test_a_vendor_that_compresses_anyway_is_decoded(
    rig: Rig, encoding: str, body: bytes
) -> None:
    rig.sim.set_fault(KEYS["pictory"], Fault(200, body, {"Content-Encoding": encoding}))
    await rig.step(70)
    state = rig.state("pictory")
    assert state.up, state.last_error
    assert rig.exported("pictory") == [600.0, 1.0]


# --- a poll always ends in an outcome and a next poll ----------------------------------


async def test_an_equal_reload_during_a_poll_keeps_its_outcome_and_polling_goes_on(
    rig: Rig,
) -> None:
    """Before: the outcome was dropped (the account's config object had been replaced
    by an equal one), the account stayed due at +inf and was never polled again."""
    key = KEYS["pictory"]
    rig.sim.set_fault(key, Fault(delay=0.5))
    before = rig.state("pictory").polls_total
    rig.clock.advance(70)
    rig.poller.tick()  # due again: start the poll...
    await asyncio.sleep(0.2)  # ...which now waits on the real socket
    assert rig.poller.unscheduled() == []
    rig.poller.apply_config(parse_config(rig.config_text))  # SIGHUP, nothing changed
    await rig.poller.drain()
    assert rig.state("pictory").polls_total == before + 1
    assert rig.poller.unscheduled() == []
    rig.sim.set_fault(key, None)
    count = rig.sim.request_count(key)
    await rig.step(80)
    assert rig.sim.request_count(key) > count, "the account was never polled again"
    assert rig.state("pictory").up


def unsendable(sim: VendorSimulator) -> dict[str, AccountConfig]:
    """Accounts the config loader should refuse but that reach the poller anyway."""
    url = sim.base_url("pictory")

    def account(name: str, key: str, base_url: str = url) -> AccountConfig:
        return AccountConfig(
            "pictory",
            name,
            Secret(key),
            interval=60.0,
            timeout=1.0,
            max_staleness=300.0,
            base_url=base_url,
            adapter=PROVIDERS["pictory"],
        )

    return {
        # U+200B survives strip(); httpx cannot encode it into a header.
        "zero_width": account("zw", "pictai_zero\u200bwidth_key"),
        # h11 refuses the header and quotes it back as bytes, newline escaped.
        "newline": account("nl", "pictai_new\nline_key_0001"),
        "tab_in_url": account(
            "tab", "pictai_tab_in_url_key_01", url.replace("127.0.0.1", "127.0.\t0.1")
        ),
    }


@pytest.mark.parametrize("name", ["zero_width", "newline", "tab_in_url"])
async def test_an_unsendable_key_or_url_is_internal_and_polled_again(rig: Rig, name: str) -> None:
    """Before: UnicodeEncodeError / httpx.InvalidURL escaped the poll task and the
    account was never polled again (and h11's error quoted the key on `/`)."""
    account = unsendable(rig.sim)[name]
    REDACTOR.register(account.api_key.reveal())
    rig.poller.apply_config(replace(parse_config(rig.config_text), accounts=(account,)))
    await rig.step(150)
    state = rig.poller.store.get(account.key)
    assert state is not None
    # Polled at once, then once per interval (+-10 %): rescheduled every time.
    assert state.polls_total == 3, "rescheduled after every internal failure"
    assert state.error_count(Reason.INTERNAL) == 3
    assert state.last_error_reason is Reason.INTERNAL
    assert "api_key and base_url" in (state.last_error or "")
    assert rig.poller.unscheduled() == []
    events = [e for e in rig.events("poll failed") if e["account"] == account.account]
    assert [e["reason"] for e in events] == ["internal"] * 3
    # The traceback once per run of internal failures, as one scrubbed text field.
    assert "Traceback" in events[0]["traceback"]
    assert [e.get("traceback") for e in events[1:]] == [None, None]
    secret = account.api_key.reveal()
    for form in (secret, repr(secret)[1:-1], repr(secret.encode("utf-8", "replace"))[2:-1]):
        assert form not in rig.logs.getvalue()
        assert form not in (state.last_error or "")


def _raising(status: int, headers: Any, body: bytes) -> Any:
    raise RuntimeError("adapter bug")


def _returning_none(status: int, headers: Any, body: bytes) -> Any:
    return None  # not a Readings: the poller trips over it


@pytest.mark.parametrize("parse", [_raising, _returning_none])
async def test_an_adapter_bug_is_internal_and_polling_goes_on(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, parse: Any
) -> None:
    broken = replace(PROVIDERS["pictory"], parse=parse)
    # The account's adapter is resolved at load; swap the running account for one
    # resolved to the broken adapter, with the same schedule (undone below).
    key = ("pictory", "acct")
    running = rig.poller._accounts[key]
    monkeypatch.setitem(rig.poller._accounts, key, replace(running, adapter=broken))
    await rig.step(130)
    state = rig.state("pictory")
    assert state.last_error_reason is Reason.INTERNAL, state.last_error
    assert state.error_count(Reason.INTERNAL) == 2
    event = next(e for e in rig.events("poll failed") if e["provider"] == "pictory")
    assert "adapter pictory: HTTP 200" in event["traceback"], "what triggered it is logged"
    monkeypatch.undo()
    await rig.step(70)
    assert rig.state("pictory").up
