"""The demo's vendor simulator over real loopback sockets: bodies, auth and paths.

The demo and the end-to-end tests trust the simulator to answer as the vendors do,
so its bodies are checked with the project's own parsers, against meters set up in
tests/unit/demo/scenario.py and a clock that only moves when a test says so. This is the
runtime class alone, without the tests' fault injection (tests/support/).
"""

from __future__ import annotations

import ast
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import exporter
from exporter.demo.simulator import DAY, SimAccount, SimMeter, VendorSimulator
from exporter.demo.vendors import SIMULATED
from exporter.model import PollError, Reason
from exporter.providers import PROVIDERS
from tests.fakes import FakeClock
from tests.unit.demo.scenario import (
    ACCOUNTS,
    ELAPSED,
    EXPECTED,
    KEYS,
    T0,
    UNAUTHORIZED,
    UNKNOWN_PATHS,
    WRONG_KEY,
    get,
    get_unknown,
    parse,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now=T0, start=T0)


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[VendorSimulator]:
    simulator = VendorSimulator(ACCOUNTS, clock=clock.time)
    with simulator:
        yield simulator


def test_the_simulator_serves_until_stopped(clock: FakeClock) -> None:
    with VendorSimulator(ACCOUNTS, port=0, clock=clock.time) as simulator:
        # Port 0 asks for a free port; base_url names the one it got.
        assert simulator.port != 0
        assert simulator.base_url("tornado") == f"http://127.0.0.1:{simulator.port}/tornado"
        assert get(simulator, "tornado", KEYS["tornado"]).status_code == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", simulator.port), timeout=5).close()


# --- bodies -------------------------------------------------------------------------


@pytest.mark.parametrize("provider", list(KEYS))
def test_each_vendor_answers_its_key_with_a_body_its_parser_reads_exactly(
    sim: VendorSimulator, clock: FakeClock, provider: str
) -> None:
    clock.advance(ELAPSED)
    response = get(sim, provider, KEYS[provider])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    # Exact equality: no problems, no warnings, every value as set up in ACCOUNTS.
    assert parse(provider, response) == EXPECTED[provider]


def test_vertaaux_rate_limit_headers_agree_with_its_body(
    sim: VendorSimulator, clock: FakeClock
) -> None:
    # The adapter falls back to these headers when the body lacks a field, so the
    # simulator's must say what its body says.
    clock.advance(ELAPSED)
    response = get(sim, "vertaaux", KEYS["vertaaux"])
    assert response.headers["x-ratelimit-limit"] == "1000"
    assert response.headers["x-ratelimit-remaining"] == "935"
    assert response.headers["x-ratelimit-reset"] == str(int(T0 + DAY))
    assert response.json()["reset_date"] == "2027-01-17T00:00:00.000Z"


def test_simmeter_grows_linearly_caps_at_its_limit_and_wraps_at_its_period() -> None:
    meter = SimMeter(limit=10, start=2, rate=1, period=100)
    assert [meter.used(t) for t in (0, 5, 8, 50, 99)] == [2, 7, 10, 10, 10]
    assert meter.used(103) == 5, "a new period starts again from `start`"
    assert SimMeter(limit=None, start=2, rate=1).used(1000) == 1002, "no limit, no cap"


def test_usage_over_http_follows_the_injected_clock(sim: VendorSimulator, clock: FakeClock) -> None:
    def video_used() -> float | None:
        readings = parse("pictory", get(sim, "pictory", KEYS["pictory"]))
        return readings.meters[0].used

    seen = [video_used()]
    for step in (ELAPSED, 900, 30 * DAY - 900):  # to 100 s, 1000 s, 30 days + 100 s
        clock.advance(step)
        seen.append(video_used())
    # 420 minutes + 0.5/s, capped at 600, back to 470 one 30-day period later.
    assert seen == [420 * 60, 470 * 60, 600 * 60, 470 * 60]


def test_the_declarative_vendors_windows_move_with_the_clock(
    sim: VendorSimulator, clock: FakeClock
) -> None:
    def search() -> tuple[float | None, float | None]:
        readings = parse("github", get(sim, "github", KEYS["github"]))
        [meter] = [m for m in readings.meters if m.meter == "search"]
        return meter.used, meter.reset_timestamp

    def credits() -> float | None:
        return parse("openrouter", get(sim, "openrouter", KEYS["openrouter"])).meters[0].used

    seen = [(search(), credits())]
    for step in (ELAPSED, 40):  # to 100 s, 140 s
        clock.advance(step)
        seen.append((search(), credits()))
    # GitHub's search window of a minute wraps and its reset moves on with it; the
    # OpenRouter key's monthly usage only grows.
    assert seen == [
        ((2, T0 + 60), 40),
        ((7, T0 + 120), 65),
        ((4, T0 + 180), 75),  # GitHub counts whole requests
    ]


# --- auth and paths -----------------------------------------------------------------


@pytest.mark.parametrize("provider", list(KEYS))
def test_a_wrong_key_gets_a_401_in_the_vendors_own_shape(
    sim: VendorSimulator, provider: str
) -> None:
    response = get(sim, provider, WRONG_KEY)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED[provider]
    # The adapter reads it as an auth failure, as it would the real vendor's.
    with pytest.raises(PollError) as caught:
        parse(provider, response)
    assert caught.value.reason is Reason.AUTH


def test_a_key_is_good_only_at_its_own_vendor(sim: VendorSimulator) -> None:
    # Tornado and Piloterr both read `x-api-key`: the header fits, the account does not.
    response = get(sim, "piloterr", KEYS["tornado"])
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED["piloterr"]


def test_pictory_takes_the_raw_key_not_a_bearer_token(sim: VendorSimulator) -> None:
    # docs/providers/pictory.md: `Authorization: <key>`, no "Bearer".
    url = sim.base_url("pictory") + PROVIDERS["pictory"].path
    response = httpx.get(url, headers={"Authorization": f"Bearer {KEYS['pictory']}"}, timeout=5)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED["pictory"]


def test_a_request_without_a_key_is_refused(sim: VendorSimulator) -> None:
    response = get(sim, "vertaaux", None)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED["vertaaux"]


@pytest.mark.parametrize("url_path", UNKNOWN_PATHS)
def test_unknown_paths_are_404(sim: VendorSimulator, url_path: str) -> None:
    response = get_unknown(sim, url_path)
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


# --- the vendor records ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(SIMULATED))
def test_each_simulated_vendor_plays_the_registered_adapter(name: str) -> None:
    # Path and auth header come from the adapter itself, so the two cannot drift.
    vendor = SIMULATED[name]
    assert vendor.provider is PROVIDERS[name]
    assert (vendor.name, vendor.path) == (name, PROVIDERS[name].path)
    key = f"{name}-key"
    headers = {k.lower(): v for k, v in PROVIDERS[name].auth_headers(key).items()}
    assert vendor.api_key(headers) == key
    assert vendor.api_key({}) == ""


def test_a_vendor_left_out_of_the_simulation_is_not_found(clock: FakeClock) -> None:
    # Simulating a vendor is optional: without a record its path is just unknown.
    left_out = "pictory"
    vendors = {name: v for name, v in SIMULATED.items() if name != left_out}
    accounts = [a for a in ACCOUNTS if a.provider != left_out]
    with VendorSimulator(accounts, clock=clock.time, vendors=vendors) as simulator:
        assert get(simulator, left_out, KEYS[left_out]).status_code == 404
        assert get(simulator, "tornado", KEYS["tornado"]).status_code == 200


def test_an_account_at_a_vendor_without_a_simulation_is_refused_by_name() -> None:
    vendors = {name: v for name, v in SIMULATED.items() if name != "tornado"}
    account = SimAccount("tornado", "some-key", {"jobs": SimMeter(limit=None)})
    with pytest.raises(ValueError, match="SimAccount for 'tornado': no simulated vendor") as err:
        VendorSimulator([account], vendors=vendors)
    assert "exporter/demo/vendors/" in str(err.value)


# What the fault injection is made of: none of it may ship in the runtime package.
TEST_MACHINERY = {
    "Fault",
    "set_fault",
    "request_count",
    "wait_for_streams",
    "wait_for_hang_up",
    "hung_up",
    "streamed",
    "gzip_filler",
    "stream_bytes",
    "gzip_bomb",
}


def test_the_runtime_package_ships_no_fault_injection() -> None:
    # The container image installs exporter/ and nothing else (.dockerignore); the
    # tests' machinery lives in tests/support/simulator.py.
    package = Path(exporter.__file__).parent
    found = {
        f"{path.relative_to(package)}: {name}"
        for path in sorted(package.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        for name in [getattr(node, field, None) for field in ("name", "attr", "id", "arg")]
        if name in TEST_MACHINERY
    }
    assert found == set()
    assert not hasattr(VendorSimulator, "set_fault")
