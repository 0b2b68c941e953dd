"""End to end: the config's `alerts:` and the adapter's defaults steer the shipped rules.

A stand-in vendor serves two Piloterr keys at 60 % of their API credits, burning them
at a pace that uses up the rest in 4.6 days, before the reset in 10 (the threshold
alert fires only for a rest that does not last), and the demo's VertaaUX free account,
used up as it is every day. The real exporter polls them with
one account tuned to `alerts: {warning: 0.5}`; a real Prometheus scrapes it and
evaluates the project's own rule files (only `for:` shortened, minutes to seconds).

The tuned account fires SaasQuotaAlmostExhausted at 60 %, the default one (80 %) does
not, and the free account's exhaustion stays silent: the exporter exports its
adapter's default (thresholds +Inf, forecast horizon 0) and the rules, which name no
vendor, read it. The rule logic itself is proven by the promtool tests; this proves
the exporter's series and the rules agree on names, labels and values.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from exporter.demo.vendors import SIMULATED
from tests.deploy.assets import PROMETHEUS_CONFIG, load_yaml
from tests.deploy.daemons import Daemon
from tests.e2e.deploy.test_alerting_e2e import TIME_SCALE, write_rules
from tests.support.config import account_at, write_config
from tests.support.processes import ExporterProcess, require_binary, wait_until
from tests.support.simulator import DAY, SimAccount, SimMeter, VendorSimulator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

TUNED: Final = "tuned"
DEFAULT: Final = "default"
# The demo's free account: exhausted from the start, on purpose.
(FREE_ACCOUNT,) = (a for a in SIMULATED["vertaaux"].demo_accounts if a.plan == "free")
FREE: Final = "audits"


def scenario() -> list[SimAccount]:
    # 1 a second: visible to the 1h and 6h burn rates within seconds (the vendor reports
    # whole credits), 400 000 left last 4.6 days: past the forecast's 2-day fast path,
    # before the reset.
    at_60 = {"api_credits": SimMeter(limit=1_000_000, start=600_000, rate=1.0)}
    return [
        SimAccount("piloterr", "e2e-tuned", at_60, reset_in=10 * DAY),
        SimAccount("piloterr", "e2e-default", at_60, reset_in=10 * DAY),
        FREE_ACCOUNT,
    ]


@dataclass
class Stack:
    exporter: ExporterProcess
    prometheus: Daemon


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    prometheus_bin = require_binary("prometheus")
    sim = VendorSimulator(scenario()).start()
    accounts = [
        account_at(sim, "piloterr", TUNED, "e2e-tuned", alerts="{warning: 0.5}"),
        account_at(sim, "piloterr", DEFAULT, "e2e-default"),
        account_at(sim, "vertaaux", FREE, FREE_ACCOUNT.api_key),
    ]
    config = write_config(tmp_path / "exporter.yml", accounts, interval="1s", timeout="800ms")
    exporter = ExporterProcess(["--config.file", str(config)], tmp_path / "exporter.log")
    prometheus: Daemon | None = None
    try:
        exporter.start()
        rules_dir = tmp_path / "rules"
        rules_dir.mkdir()
        prometheus_config = load_yaml(PROMETHEUS_CONFIG)
        prometheus_config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        prometheus_config["rule_files"] = [str(p) for p in write_rules(rules_dir)]
        # No Alertmanager here: the ALERTS series says what fires.
        prometheus_config.pop("alerting", None)
        (job,) = prometheus_config["scrape_configs"]
        job.update(
            scrape_interval="1s",
            scrape_timeout="1s",
            static_configs=[{"targets": [f"127.0.0.1:{exporter.port}"]}],
        )
        path = tmp_path / "prometheus.yml"
        path.write_text(yaml.safe_dump(prometheus_config, sort_keys=False))
        prometheus = Daemon(
            prometheus_bin,
            [f"--config.file={path}", f"--storage.tsdb.path={tmp_path / 'prom-data'}"],
            tmp_path / "prometheus.log",
        )
        wait_until(prometheus.ready, timeout=30)
        yield Stack(exporter, prometheus)
    finally:
        if prometheus is not None:
            prometheus.stop()
        if exporter.proc is not None:
            exporter.stop()
        sim.stop()


def query(prometheus: Daemon, expr: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = prometheus.api("/api/v1/query", query=expr)["data"]["result"]
    return result


def test_alert_settings_from_the_config_and_the_adapter_steer_the_shipped_rules(
    stack: Stack,
) -> None:
    prometheus = stack.prometheus

    def tuned_fires() -> bool:
        """SaasQuotaAlmostExhausted (warning) fires for the account tuned to 0.5"""
        return bool(
            query(
                prometheus,
                f'ALERTS{{alertname="SaasQuotaAlmostExhausted", account="{TUNED}",'
                ' severity="warning", alertstate="firing"}',
            )
        )

    started = time.monotonic()
    try:
        # 15m scaled to 15 s, plus the first scrapes (Prometheus applies targets every 5 s).
        wait_until(tuned_fires, timeout=90, interval=0.5)
    except BaseException:
        print(prometheus.logs()[-3000:])
        raise

    # The series the rules read, as Prometheus scraped them from the exporter.
    settings = {
        (s["metric"]["account"], s["metric"].get("severity")): float(s["value"][1])
        for s in query(
            prometheus,
            "saas_quota_alert_threshold_ratio or saas_quota_alert_forecast_horizon_seconds",
        )
    }
    assert settings == {
        (TUNED, "warning"): 0.5,
        (FREE, "warning"): math.inf,
        (FREE, "critical"): math.inf,
        (FREE, None): 0.0,
    }

    # The free account has been exhausted since the first scrape, longer than
    # SaasQuotaExhausted's `for:` (5m scaled to 5 s); the default account has sat at
    # 60 % as long as the tuned one. Neither ever became even pending.
    exhausted_for = 300 / TIME_SCALE
    assert time.monotonic() - started > exhausted_for
    window = f"{int(time.monotonic() - started) + 30}s"
    quiet = query(
        prometheus,
        f'max_over_time(ALERTS{{account=~"{DEFAULT}|{FREE}", alertname=~"SaasQuota.*"}}[{window}])',
    )
    assert quiet == [], quiet
    # The free meter is exhausted as far as the recorded ratio goes: only the settings
    # keep it quiet.
    (ratio,) = query(
        prometheus,
        f'provider_account_meter:saas_quota_used_per_limit:ratio{{account="{FREE}"}}',
    )
    assert float(ratio["value"][1]) == 1.0
    (default_ratio,) = query(
        prometheus,
        f'provider_account_meter:saas_quota_used_per_limit:ratio{{account="{DEFAULT}"}}',
    )
    assert float(default_ratio["value"][1]) == pytest.approx(0.6, abs=0.001)
