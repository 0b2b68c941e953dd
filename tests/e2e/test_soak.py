"""The load and soak test of issue 4 (benchmarks/soak.py for 60 s) and the chaos soak
of issue 8 (benchmarks/chaos.py for 45 s), each as a subprocess.

20 concurrent scrapers hammer /metrics while the simulated vendors fail and recover
at random. Nothing here asserts a latency (that would flake on a shared machine);
the figures are printed for the CI log. What is asserted: no scrape failed, and the
exporter's threads, file descriptors and memory stayed within the bounds the script
states (see the constants at the top of benchmarks/soak.py).

The chaos soak (benchmarks/chaos.py, 45 s here, 3 minutes by `make bench-chaos`) runs
every vendor fault, held idle and slowloris connections and SIGHUPs at once; its
checks are the acceptance figures of "the exporter never stops watching".
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import pytest

from benchmarks import chaos, soak
from exporter.model import PollError
from exporter.providers import PROVIDERS
from tests.support.processes import REPO

DURATION_SECONDS = 60


@pytest.mark.soak
@pytest.mark.e2e
@pytest.mark.timeout(DURATION_SECONDS + 90)
def test_soak_twenty_scrapers_for_a_minute_while_vendors_fail() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--duration", str(DURATION_SECONDS), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=DURATION_SECONDS + 75,
        check=False,
    )
    assert done.returncode in (0, 1), f"soak could not run:\n{done.stdout}\n{done.stderr}"
    result = json.loads(done.stdout)
    print("\n" + soak.report(result))

    assert result["failed_scrapes"] == 0, result["failure_examples"]
    assert result["scrapes"] > 0
    broken = [c for c in result["checks"] if not c["ok"]]
    assert not broken, broken
    assert done.returncode == 0
    # The chaos reached the exporter: it saw failures of several kinds and recovered.
    assert len(result["poll_errors"]) >= 3, result["poll_errors"]
    assert result["faults_applied"].get("healthy", 0) > 0


CHAOS_SECONDS = 45


@pytest.mark.soak
@pytest.mark.e2e
@pytest.mark.timeout(CHAOS_SECONDS + 120)
def test_chaos_soak_every_vendor_fault_held_connections_and_sighups() -> None:
    """benchmarks/chaos.py for 45 s: every check it prints must pass (see its docstring)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.chaos", "--duration", str(CHAOS_SECONDS), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CHAOS_SECONDS + 100,
        check=False,
    )
    assert done.returncode in (0, 1), f"chaos soak could not run:\n{done.stdout}\n{done.stderr}"
    result = json.loads(done.stdout)
    print("\n" + chaos.report(result))

    broken = [c for c in result["checks"] if not c["ok"]]
    assert not broken, broken
    assert done.returncode == 0
    # The chaos reached the exporter: every fault kind was applied, and SIGHUPs of both
    # kinds were sent.
    assert set(result["faults_applied"]) >= set(chaos.FAULTS), result["faults_applied"]
    assert result["sighups"].get("unchanged", 0) > 0
    assert result["sighups"].get("changed", 0) > 0


# --- the chaos soak's own instruments (fast, always run) ------------------------------


def test_the_chaos_leak_finder_sees_every_encoding_and_not_the_account_names() -> None:
    accounts, names = chaos.chaos_accounts()
    finder = chaos.LeakFinder(names)
    key = accounts[7].api_key
    for form, text in chaos.key_forms(key).items():
        # As a JSON log line renders it: quotes, newlines and backslashes escaped.
        line = json.dumps({"event": "poll failed", "error": f"HTTP 401: bad key {text}"})
        assert finder.find(line), f"{form} not found in {line}"
    log = json.dumps({"account": names[key], "provider": accounts[7].provider, "event": "x"})
    assert finder.find(log) == []


@pytest.mark.parametrize("provider", sorted(chaos._HUGE_BODIES))
def test_the_chaos_number_bodies_reach_the_exporter_as_readings(provider: str) -> None:
    # A body the adapter rejected as a whole would never put 1e308 or -5 on /metrics.
    for bodies in (chaos._HUGE_BODIES, chaos._NEGATIVE_BODIES):
        body = json.dumps(bodies[provider]).encode()
        with contextlib.suppress(PollError):  # a rejection is the exporter's own verdict
            readings = PROVIDERS[provider].parse(200, {}, body)
            assert readings.meters or readings.problems


def test_bad_values_flags_infinite_nan_and_negative_quota_gauges() -> None:
    body = (
        b'saas_quota_used{account="a",meter="m",provider="p"} +Inf\n'
        b'saas_quota_limit{account="a",meter="m",provider="p"} NaN\n'
        b'saas_quota_remaining{account="a",meter="m",provider="p"} -1.0\n'
        b'saas_quota_used{account="b",meter="m",provider="p"} 5.0\n'
        b"saas_quota_poll_duration_seconds -1.0\n"
    )
    assert len(chaos.bad_values(body)) == 3
