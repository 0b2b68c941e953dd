"""`saas-quota-exporter demo`: its accounts, the config it writes, and a real run.

The demo must be the ordinary exporter on an ordinary config, so the config it
writes goes through the real loader, every account in it is polled from the
simulator with the real adapters, and one run of the console script is read over
/metrics like any other deployment.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import ListenAddress
from exporter.config import load_config, parse_config
from exporter.demo.run import (
    DEMO_INTERVAL,
    demo_accounts,
    demo_config_text,
    load_demo_config,
    run_demo,
)
from exporter.demo.simulator import DAY, VendorSimulator
from exporter.demo.vendors import SIMULATED
from exporter.durations import parse_duration
from exporter.model import MeterReading
from exporter.providers import PROVIDERS
from tests.fakes import FakeClock

# (provider, account) of every demo account: the names its dashboards show.
DEMO_ACCOUNTS = {
    ("pictory", "marketing"),
    ("tornado", "pipeline"),
    ("piloterr", "scraping"),
    ("vidnavigator", "research"),
    ("vertaaux", "audits"),
    ("vertaaux", "agency"),
    # Declarative vendors (exporter/providers/*.yaml) beside the five.
    ("github", "ci-bot"),
    ("openrouter", "assistant"),
}
T0 = 20834 * DAY


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now=T0, start=T0)


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[VendorSimulator]:
    simulator = VendorSimulator(demo_accounts(), clock=clock.time)
    with simulator:
        yield simulator


def meter(sim: VendorSimulator, api_key: str, name: str) -> MeterReading:
    """One meter of one demo account, fetched and parsed as the exporter would."""
    account = sim.accounts[api_key]
    adapter = PROVIDERS[account.provider]
    response = httpx.get(
        sim.base_url(account.provider) + adapter.path,
        headers=adapter.auth_headers(api_key),
        timeout=5,
    )
    headers = {k.lower(): v for k, v in response.headers.items()}
    readings = adapter.parse(response.status_code, headers, response.content)
    [reading] = [m for m in readings.meters if m.meter == name]
    return reading


def samples(text: str, name: str) -> dict[tuple[str, str, str], float]:
    """(provider, account, meter) -> value of one metric in an exposition."""
    return {
        (s.labels["provider"], s.labels["account"], s.labels.get("meter", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


# --- accounts and config ----------------------------------------------------------------


def test_demo_accounts_cover_every_simulated_vendor_with_distinct_keys() -> None:
    accounts = demo_accounts()
    assert {a.provider for a in accounts} == set(SIMULATED)
    assert set(SIMULATED) <= set(PROVIDERS)
    assert len({a.api_key for a in accounts}) == len(accounts)
    # demo_config_text names each account after the third part of its key.
    for account in accounts:
        assert account.api_key.startswith(f"demo-{account.provider}-"), account.api_key


def test_a_vendor_without_a_simulation_is_simply_not_in_the_demo(clock: FakeClock) -> None:
    # Simulating a vendor is optional (CONTRIBUTING.md): leave each one out in turn.
    for left_out in SIMULATED:
        vendors = {name: v for name, v in SIMULATED.items() if name != left_out}
        accounts = demo_accounts(vendors)
        assert accounts, left_out
        assert {a.provider for a in accounts} == set(vendors)
        with VendorSimulator(accounts, clock=clock.time, vendors=vendors) as sim:
            config = load_demo_config(sim)
        assert {a.provider for a in config.accounts} == set(vendors)


def test_demo_config_loads_and_points_every_account_at_the_simulator(
    sim: VendorSimulator, tmp_path: Path
) -> None:
    # Through load_config, as `--config.file` would read it if a user saved it.
    path = tmp_path / "demo.yml"
    path.write_text(demo_config_text(sim))
    config = load_config(path)
    assert {a.key for a in config.accounts} == DEMO_ACCOUNTS
    for account in config.accounts:
        simulated = sim.accounts[account.api_key.reveal()]
        assert simulated.provider == account.provider
        assert account.base_url == sim.base_url(account.provider)
        assert account.url.startswith(f"http://127.0.0.1:{sim.port}/{account.provider}/")
        assert account.interval == parse_duration(DEMO_INTERVAL)
        assert account.timeout == 5.0
    assert config.interval == parse_duration(DEMO_INTERVAL)


def test_load_demo_config_drops_only_the_rate_limit_warnings(sim: VendorSimulator) -> None:
    raw = parse_config(demo_config_text(sim))
    # The 15 s interval is below every vendor's recommended minimum: one warning per
    # account, and nothing else the demo would be hiding.
    assert len(raw.warnings) == len(DEMO_ACCOUNTS)
    assert all("recommended minimum" in warning for warning in raw.warnings), raw.warnings
    demo = load_demo_config(sim)
    assert demo.warnings == ()
    assert demo == dataclasses.replace(raw, warnings=())


def test_every_demo_account_polls_cleanly_from_the_simulator(sim: VendorSimulator) -> None:
    # The URL and auth header the config yields reach the right simulated vendor,
    # and the real adapter reads the whole body: no problem, nothing skipped.
    for account in load_demo_config(sim).accounts:
        response = httpx.get(
            account.url, headers=account.adapter.auth_headers(account.api_key.reveal()), timeout=5
        )
        assert response.status_code == 200, account.key
        headers = {k.lower(): v for k, v in response.headers.items()}
        readings = account.adapter.parse(response.status_code, headers, response.content)
        assert readings.meters, account.key
        assert readings.problems == (), account.key
        assert readings.warnings == (), account.key


def test_the_demo_has_something_to_alert_on_within_ten_minutes(
    sim: VendorSimulator, clock: FakeClock
) -> None:
    # demo_accounts' promise: the free VertaaUX key is spent from the start,
    # Piloterr runs out and Pictory's video minutes reach their cap in ten minutes.
    free = meter(sim, "demo-vertaaux-audits", "credits")
    assert (free.limit, free.effective_remaining) == (3, 0)
    assert meter(sim, "demo-piloterr-scraping", "api_credits").effective_remaining == 300
    assert meter(sim, "demo-pictory-marketing", "video_seconds").used == 420 * 60
    clock.advance(600)
    assert meter(sim, "demo-piloterr-scraping", "api_credits").effective_remaining == 0
    video = meter(sim, "demo-pictory-marketing", "video_seconds")
    assert video.used == video.limit == 600 * 60


# --- running it -------------------------------------------------------------------------


def test_demo_on_a_busy_port_says_so_and_returns_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        code = run_demo(ListenAddress("127.0.0.1", port))
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
