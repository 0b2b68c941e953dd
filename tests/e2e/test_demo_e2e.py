"""saas-quota-exporter demo as a newcomer runs it: the real process, its banner, its metrics."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from exporter.config import load_config
from exporter.providers import PROVIDERS
from tests.support.processes import ExporterProcess, wait_until
from tests.unit.demo.test_run import DEMO_ACCOUNTS, samples


def test_demo_runs_the_real_exporter_on_the_simulated_vendors(tmp_path: Path) -> None:
    proc = ExporterProcess(["demo"], tmp_path / "log").start()
    try:
        status, text = proc.get("/metrics")
        assert status == 200
        up = samples(text, "saas_quota_up")
        assert {(p, a) for (p, a, _), v in up.items() if v == 1} == DEMO_ACCOUNTS
        remaining = samples(text, "saas_quota_remaining")
        assert remaining[("vertaaux", "audits", "credits")] == 0
        assert "demo-" not in text, "keys never in /metrics"

        # The banner tells where to look, and the simulator it names is the live one.
        wait_until(lambda: "Press Ctrl-C to stop." in proc.logs(), timeout=10)
        assert f"{proc.url}/metrics" in proc.logs()
        found = re.search(r"simulated vendors at http://127\.0\.0\.1:(\d+)/", proc.logs())
        assert found, proc.logs()
        vertaaux = PROVIDERS["vertaaux"]
        answer = httpx.get(
            f"http://127.0.0.1:{found[1]}/vertaaux{vertaaux.path}",
            headers=vertaaux.auth_headers("demo-vertaaux-agency"),
            timeout=5,
        )
        assert answer.status_code == 200

        # It shows the config it runs: a file, whose base_urls are that simulator.
        shown = re.search(r"  config:       (\S+) \(the config it runs", proc.logs())
        assert shown, proc.logs()
        written = load_config(shown[1])
        assert {(a.provider, a.account) for a in written.accounts} == DEMO_ACCOUNTS
        assert {a.base_url for a in written.accounts} == {
            f"http://127.0.0.1:{found[1]}/{a.provider}" for a in written.accounts
        }
        # And the log says the polls work.
        n = len(DEMO_ACCOUNTS)
        done = f"first poll round done: {n} accounts, {n} up, 0 failing"
        wait_until(lambda: done in proc.logs())

        # A reload writes the config again from the same simulator: nothing changes.
        reload = httpx.post(proc.url + "/-/reload", timeout=35)
        assert (reload.status_code, reload.text) == (200, "config reloaded\n")
        assert proc.ready()
    finally:
        code = proc.stop()
    assert code == 0, proc.logs()
    assert "demo-vertaaux-agency" not in proc.logs(), "keys never in logs"
