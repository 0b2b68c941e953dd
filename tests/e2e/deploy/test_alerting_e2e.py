"""End to end with the real binaries: vendor -> exporter -> Prometheus -> Alertmanager -> webhook.

A local stand-in vendor serves five accounts: Piloterr's API credits sit at their limit,
VidNavigator's monthly credits burn fast, Pictory's video seconds burn steadily with no
reset reported, Pictory's voice-over has a limit of 0, Tornado has an uncapped jobs
meter, and VertaaUX's free tier is used up as it is every day. The real exporter polls
it every second; a real Prometheus scrapes the exporter every second with the
project's own rule files (only `for:` shortened, minutes to seconds); a real
Alertmanager runs the project's own alertmanager.yml (only receiver URLs and group
timers changed) and delivers to a webhook receiver inside this test.

The test proves that the exhausted meter pages, the fast-burning meters raise the
forecast before anything runs out, inhibition suppresses the redundant alert, and
nothing fires for the limit-0, uncapped and free-tier meters (the free tier through
the alert settings its adapter's default makes the exporter export). In the same run it
executes every query of every dashboard panel and template variable against that
Prometheus: none may fail, and every one must return data except the combinations
listed in EXPECTED_EMPTY, each with its reason.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from exporter.durations import parse_duration
from tests.deploy.assets import (
    ALERTMANAGER_CONFIG,
    ALERTS_FILE,
    PROMETHEUS_CONFIG,
    RULES_FILE,
    alert_rules,
    dashboards,
    load_yaml,
)
from tests.deploy.daemons import Daemon
from tests.deploy.grafana import (
    PanelTarget,
    format_value,
    interpolate,
    is_multi,
    label_values_query,
    panel_targets,
    query_variables,
)
from tests.support.config import account_at, write_config
from tests.support.processes import ExporterProcess, free_port, require_binary, wait_until
from tests.support.simulator import DAY, GB, Fault, SimAccount, SimMeter, VendorSimulator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# `for:` in the temporary rule copy: minutes become seconds (15m -> 15s).
TIME_SCALE: Final = 60

# api key -> (provider, account name in the exporter's config)
ACCOUNTS: Final = {
    "e2e-piloterr": ("piloterr", "scraping"),
    "e2e-vidnavigator": ("vidnavigator", "research"),
    "e2e-pictory": ("pictory", "marketing"),
    "e2e-tornado": ("tornado", "pipeline"),
    "e2e-vertaaux": ("vertaaux", "audits"),
}

# The alerts this scenario must deliver (alertname, provider, account, meter) -> receiver.
EXPECTED_DELIVERIES: Final = {
    # At its limit: pages.
    ("SaasQuotaExhausted", "piloterr", "scraping", "api_credits"): "saas-quota-pager",
    # 70 credits left at 0.05 a second: gone in ~23 minutes, the reset is 20 days away.
    ("SaasQuotaPredictedExhaustion", "vidnavigator", "research", "credits"): "saas-quota-tickets",
    # No reset reported; 480 minutes left at 1.2 seconds a second: gone in ~6.7 hours,
    # inside the 7-day horizon.
    ("SaasQuotaPredictedExhaustion", "pictory", "marketing", "video_seconds"): "saas-quota-tickets",
}

# Dashboard queries that may return nothing for some accounts, and why. Keyed by
# (dashboard uid, panel title, refId); the value is the providers for which the
# query is legitimately empty in this scenario. Everything else must return data.
NO_KEY_EXPIRY = "only Piloterr reports API key expiry and activity"
EXPECTED_EMPTY: Final[dict[tuple[str, str, str], tuple[frozenset[str], str]]] = {
    ("saas-quota-account", "API key expires in", "A"): (
        frozenset({"pictory", "tornado", "vidnavigator", "vertaaux"}),
        NO_KEY_EXPIRY,
    ),
    ("saas-quota-account", "API key active", "A"): (
        frozenset({"pictory", "tornado", "vidnavigator", "vertaaux"}),
        NO_KEY_EXPIRY,
    ),
    ("saas-quota-account", "Plan request rate limits", "A"): (
        frozenset({"pictory", "tornado", "vidnavigator", "vertaaux"}),
        "only Piloterr reports plan request-rate limits",
    ),
    ("saas-quota-account", "Per-request caps", "A"): (
        frozenset({"pictory", "piloterr", "vidnavigator", "vertaaux"}),
        "only Tornado reports per-request caps",
    ),
    ("saas-quota-account", "Runs out in vs resets in", "A"): (
        frozenset({"piloterr", "tornado", "vertaaux"}),
        "no capped meter of these accounts is being used (flat usage has no forecast)",
    ),
    ("saas-quota-account", "Runs out in vs resets in", "B"): (
        frozenset({"piloterr", "tornado", "vertaaux"}),
        "no capped meter of these accounts is being used (flat usage has no forecast)",
    ),
    ("saas-quota-account", "Runs out in vs resets in", "C"): (
        frozenset({"pictory"}),
        "Pictory reports no reset time for any meter",
    ),
    ("saas-quota-account", "Pace: used share vs elapsed share of the window", "A"): (
        frozenset({"pictory", "tornado", "vertaaux"}),
        "no capped meter with both a window start and a reset (Pictory: no window;"
        " Tornado: only its uncapped transfer meter has one; VertaaUX: reset only)",
    ),
    ("saas-quota-account", "Pace: used share vs elapsed share of the window", "B"): (
        frozenset({"pictory", "tornado", "vertaaux"}),
        "no capped meter with both a window start and a reset (Pictory: no window;"
        " Tornado: only its uncapped transfer meter has one; VertaaUX: reset only)",
    ),
}


# --- the stand-in vendor ----------------------------------------------------------------


def scenario() -> list[SimAccount]:
    return [
        SimAccount(
            "piloterr",
            "e2e-piloterr",
            {"api_credits": SimMeter(limit=2000, start=2000)},
            reset_in=10 * DAY,
        ),
        SimAccount(
            "vidnavigator",
            "e2e-vidnavigator",
            {
                "credits": SimMeter(limit=80, start=10, rate=0.05),
                # Slow enough to stay beyond the 7-day horizon (~116 days left).
                "storage_gb": SimMeter(limit=500, start=100, rate=0.00004),
            },
            plan="voyager",
            reset_in=20 * DAY,
        ),
        SimAccount(
            "pictory",
            "e2e-pictory",
            {
                "video_minutes": SimMeter(limit=600, start=120, rate=0.02),
                "transcription_minutes": SimMeter(limit=600, start=12),
                "voiceover_minutes": SimMeter(limit=0),
                "ai_credits": SimMeter(limit=3000, start=140.5),
            },
        ),
        SimAccount(
            "tornado",
            "e2e-tornado",
            {"storage_gb": SimMeter(limit=1024, start=700), "jobs": SimMeter(limit=None)},
            reset_in=12 * DAY,
        ),
        SimAccount(
            "vertaaux",
            "e2e-vertaaux",
            {"credits": SimMeter(limit=3, start=3)},
            plan="free",
            reset_in=DAY / 3,
            period_length=DAY,
        ),
    ]


def tornado_body(sim: VendorSimulator) -> bytes:
    """A limited Tornado key with per-request caps, which the simulator does not model."""
    end = datetime.fromtimestamp(sim.t0, UTC) + timedelta(days=12)

    def iso(moment: datetime) -> str:
        return moment.isoformat(timespec="seconds").replace("+00:00", "Z")

    return json.dumps(
        {
            "client_name": "E2E Pipeline",
            "usage_count": 1200,
            "storage_usage_gb": 700.0,
            "storage_reserved_gb": 0.0,
            "storage_effective_usage_gb": 700.0,
            "storage_limit_gb": 1024,
            "storage_limit_bytes": 1024 * GB,
            "storage_remaining_gb": 324.0,
            "billing_period_start": iso(end - timedelta(days=30)),
            "billing_period_end": iso(end),
            "current_period_usage_gb": 350.0,
            "max_duration_limit_seconds": 3600,
            "max_filesize_limit_bytes": 5 * GB,
        }
    ).encode()


# --- processes ---------------------------------------------------------------------------


@dataclass
class Webhook:
    """Alertmanager's webhook receiver: records every POST with its arrival (Unix) time."""

    port: int = field(default_factory=free_port)
    deliveries: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def serve(self) -> ThreadingHTTPServer:
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with webhook.lock:
                    webhook.deliveries.append((time.time(), self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="webhook", daemon=True).start()
        return server

    def alerts(self) -> list[tuple[float, str, dict[str, Any]]]:
        """(arrival, receiver path, alert) for every firing alert delivered so far."""
        with self.lock:
            return [
                (at, path, alert)
                for at, path, payload in self.deliveries
                for alert in payload["alerts"]
                if alert["status"] == "firing"
            ]

    def first(self, alertname: str, **labels: str) -> tuple[float, str, dict[str, Any]] | None:
        for at, path, alert in self.alerts():
            got = alert["labels"]
            if got["alertname"] == alertname and all(got.get(k) == v for k, v in labels.items()):
                return at, path, alert
        return None


@dataclass
class Stack:
    sim: VendorSimulator
    exporter: ExporterProcess
    alertmanager: Daemon
    prometheus: Daemon
    webhook: Webhook
    exporter_ready: float
    prometheus_ready: float


def shortened(duration: str) -> str:
    return f"{max(parse_duration(duration) / TIME_SCALE, 1):g}s"


def write_rules(directory: Path) -> list[Path]:
    """The project's rule files, with every `for:` shortened (nothing else changed)."""
    alerts = load_yaml(ALERTS_FILE)
    for group in alerts["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = shortened(rule["for"])
    recording = directory / RULES_FILE.name
    recording.write_text(RULES_FILE.read_text())
    alerting = directory / ALERTS_FILE.name
    alerting.write_text(yaml.safe_dump(alerts, sort_keys=False))
    return [recording, alerting]


def write_prometheus_config(
    path: Path, rules: list[Path], exporter_port: int, alertmanager_port: int
) -> Path:
    """The example prometheus.yml pointed at this test's processes, scraping every second."""
    config = load_yaml(PROMETHEUS_CONFIG)
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(p) for p in rules]
    config["alerting"]["alertmanagers"][0]["static_configs"] = [
        {"targets": [f"127.0.0.1:{alertmanager_port}"]}
    ]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "saas-quota"
    job.update(
        scrape_interval="1s",
        scrape_timeout="1s",
        static_configs=[{"targets": [f"127.0.0.1:{exporter_port}"]}],
    )
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_alertmanager_config(path: Path, webhook: Webhook) -> Path:
    """The example alertmanager.yml with its receivers pointed at the test's webhook."""
    config = load_yaml(ALERTMANAGER_CONFIG)
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook.url(receiver["name"])
    routes = [config["route"], *config["route"]["routes"]]
    for route in routes:
        route.update(group_wait="1s", group_interval="2s", repeat_interval="1h")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_exporter_config(path: Path, sim: VendorSimulator) -> Path:
    accounts = [
        account_at(sim, provider, account, key) for key, (provider, account) in ACCOUNTS.items()
    ]
    return write_config(path, accounts, interval="1s", timeout="800ms")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    prometheus_bin = require_binary("prometheus")
    alertmanager_bin = require_binary("prometheus-alertmanager")
    webhook = Webhook()
    server = webhook.serve()
    sim = VendorSimulator(scenario()).start()
    sim.set_fault("e2e-tornado", Fault(200, tornado_body(sim)))
    started: list[Daemon] = []
    exporter = ExporterProcess(
        ["--config.file", str(write_exporter_config(tmp_path / "exporter.yml", sim))],
        tmp_path / "exporter.log",
    )
    try:
        exporter.start()
        exporter_ready = time.time()
        alertmanager = Daemon(
            alertmanager_bin,
            [
                f"--config.file={write_alertmanager_config(tmp_path / 'am.yml', webhook)}",
                f"--storage.path={tmp_path / 'am-data'}",
                "--cluster.listen-address=",
            ],
            tmp_path / "alertmanager.log",
        )
        started.append(alertmanager)
        wait_until(alertmanager.ready, timeout=30)
        rules_dir = tmp_path / "rules"
        rules_dir.mkdir()
        prometheus_config = write_prometheus_config(
            tmp_path / "prometheus.yml", write_rules(rules_dir), exporter.port, alertmanager.port
        )
        prometheus = Daemon(
            prometheus_bin,
            [
                f"--config.file={prometheus_config}",
                f"--storage.tsdb.path={tmp_path / 'prom-data'}",
            ],
            tmp_path / "prometheus.log",
        )
        started.append(prometheus)
        wait_until(prometheus.ready, timeout=30)
        yield Stack(sim, exporter, alertmanager, prometheus, webhook, exporter_ready, time.time())
    finally:
        for daemon in reversed(started):
            daemon.stop()
        if exporter.proc is not None:
            exporter.stop()
        sim.stop()
        server.shutdown()
        server.server_close()


# --- the test ------------------------------------------------------------------------------


def test_alerts_reach_the_webhook_and_every_dashboard_query_returns_data(stack: Stack) -> None:
    webhook, prometheus, alertmanager = stack.webhook, stack.prometheus, stack.alertmanager
    exhausted = {"provider": "piloterr", "account": "scraping", "meter": "api_credits"}

    def exhausted_delivered() -> bool:
        """SaasQuotaExhausted for piloterr/scraping/api_credits reached the webhook"""
        return webhook.first("SaasQuotaExhausted", **exhausted) is not None

    def forecast_delivered() -> bool:
        """both SaasQuotaPredictedExhaustion alerts reached the webhook"""
        return all(
            webhook.first(name, provider=p, account=a, meter=m) is not None
            for (name, p, a, m) in EXPECTED_DELIVERIES
        )

    try:
        wait_until(exhausted_delivered, timeout=60, interval=0.2)
        # The forecast's for: is the longest (3h, scaled to 180 s): wait that plus margin.
        forecast_for = max(
            r.for_seconds for r in alert_rules() if r.name == "SaasQuotaPredictedExhaustion"
        )
        wait_until(forecast_delivered, timeout=forecast_for / TIME_SCALE + 90, interval=0.2)
    except BaseException:
        print(stack.prometheus.logs()[-3000:], stack.alertmanager.logs()[-3000:], sep="\n")
        raise

    # What arrived, where, with which labels and annotations; and when, split into the
    # data path (exporter ready -> pending in Prometheus), the `for:` (pending -> firing)
    # and the notification path (firing -> Alertmanager -> webhook).
    pending_since = {
        (a["labels"]["alertname"], a["labels"].get("provider"), a["labels"].get("meter")): a
        for a in prometheus.api("/api/v1/alerts")["data"]["alerts"]
    }
    timings: dict[str, str] = {}
    instance = f"127.0.0.1:{stack.exporter.port}"
    for (name, provider, account, meter), receiver in EXPECTED_DELIVERIES.items():
        found = webhook.first(name, provider=provider, account=account, meter=meter)
        assert found is not None
        at, path, alert = found
        assert path == f"/{receiver}"
        labels = alert["labels"]
        assert labels == {
            "alertname": name,
            "severity": "critical" if receiver == "saas-quota-pager" else "warning",
            "provider": provider,
            "account": account,
            "meter": meter,
            "job": "saas-quota",
            "instance": instance,
        }
        annotations = alert["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
        assert annotations["runbook_url"].endswith("#" + name.lower())
        assert annotations["dashboard_url"].endswith(
            f"/d/saas-quota-account?var-provider={provider}&var-account={account}&var-meter={meter}"
        )
        assert f"{provider} account {account}" in annotations["description"]
        active_at = unix(pending_since[(name, provider, meter)]["activeAt"])
        fired_at = unix(alert["startsAt"])
        timings[f"exporter ready -> webhook, {name} {provider}/{meter} (s)"] = (
            f"{at - stack.exporter_ready:.1f} = {active_at - stack.exporter_ready:.1f} to pending"
            f" + {fired_at - active_at:.1f} for: + {at - fired_at:.1f} Alertmanager to webhook"
        )

    _, _, page = webhook.first("SaasQuotaExhausted", **exhausted) or (0, "", {})
    assert page["annotations"]["summary"] == "A SaaS quota is used up."
    assert page["annotations"]["description"].startswith(
        "piloterr account scraping has no api_credits quota left (100% of the limit used);"
        " it resets at "
    )
    _, _, forecast = webhook.first("SaasQuotaPredictedExhaustion", meter="credits") or (0, "", {})
    assert ", before it resets at " in forecast["annotations"]["description"]
    _, _, lifetime = webhook.first("SaasQuotaPredictedExhaustion", meter="video_seconds") or (
        0,
        "",
        {},
    )
    assert "the vendor reports no reset for this meter" in lifetime["annotations"]["description"]

    # Inhibition: the almost-exhausted alerts of the exhausted meter reached Alertmanager
    # and were suppressed by SaasQuotaExhausted.
    def inhibited() -> bool:
        """both SaasQuotaAlmostExhausted alerts of the exhausted meter are inhibited"""
        alerts = alertmanager.api("/api/v2/alerts", filter='alertname="SaasQuotaAlmostExhausted"')
        states = {
            a["labels"]["severity"]: a["status"]
            for a in alerts
            if all(a["labels"].get(k) == v for k, v in exhausted.items())
        }
        return set(states) == {"warning", "critical"} and all(
            s["state"] == "suppressed" and s["inhibitedBy"] for s in states.values()
        )

    wait_until(inhibited, timeout=30, interval=0.5)

    queries = run_dashboard_queries(prometheus, stack)

    # Nothing else was delivered: not the inhibited alerts, nothing for the limit-0,
    # uncapped or free-tier meters, no exporter or poll alerts.
    delivered = {
        (
            a["labels"]["alertname"],
            a["labels"].get("provider"),
            a["labels"].get("account"),
            a["labels"].get("meter"),
        )
        for _, _, a in webhook.alerts()
    }
    assert delivered == set(EXPECTED_DELIVERIES), delivered ^ set(EXPECTED_DELIVERIES)
    # The free tier is silent because the exporter exports its adapter's default
    # (both thresholds +Inf, forecast horizon 0) and the rules read it; no alert
    # expression names the vendor. Its meter is used up all the same.
    settings = {
        (s["metric"]["__name__"], s["metric"].get("severity")): float(s["value"][1])
        for s in prometheus.api(
            "/api/v1/query",
            query='{__name__=~"saas_quota_alert_threshold_ratio|saas_quota_alert_forecast_horizon_seconds",'
            ' provider="vertaaux", account="audits", meter="credits"}',
        )["data"]["result"]
    }
    assert settings == {
        ("saas_quota_alert_threshold_ratio", "warning"): float("inf"),
        ("saas_quota_alert_threshold_ratio", "critical"): float("inf"),
        ("saas_quota_alert_forecast_horizon_seconds", None): 0.0,
    }
    free_ratio = prometheus.api(
        "/api/v1/query",
        query='provider_account_meter:saas_quota_used_per_limit:ratio{account="audits"}',
    )["data"]["result"]
    assert [float(s["value"][1]) for s in free_ratio] == [1.0]

    figures = {
        "exporter ready -> Prometheus ready (s)": round(
            stack.prometheus_ready - stack.exporter_ready, 1
        ),
        # Prometheus applies new scrape targets at most every 5 s, so most of the time
        # "to pending" is spent waiting for the first scrape.
        "Prometheus ready -> first scrape of the exporter (s)": round(
            first_scrape(prometheus) - stack.prometheus_ready, 1
        ),
        **timings,
        **queries,
    }
    report = "\n".join(f"  {key}: {value}" for key, value in figures.items())
    print(f"\nend-to-end figures (for: scaled 1/{TIME_SCALE}, scrape and evaluation 1s):\n{report}")


def run_dashboard_queries(prometheus: Daemon, stack: Stack) -> dict[str, Any]:
    """Every variable and panel query of every dashboard, as Grafana would send it."""
    window = max(int(time.time() - stack.prometheus_ready), 10)
    builtins = {"__rate_interval": "4s", "__interval": "2s", "__range": f"{window}s"}
    end = time.time()
    variable_calls = [0]
    executions = 0
    with_data = 0
    targets_with_data: set[PanelTarget] = set()
    unexplained: list[str] = []
    for board in dashboards().values():
        assignments = resolve_variables(prometheus, board, variable_calls)
        targets = list(panel_targets(board))
        for values, provider in assignments:
            for target in targets:
                expr = interpolate(target.expr, {**builtins, **values})
                if target.instant:
                    response = prometheus.api("/api/v1/query", query=expr, time=f"{end}")
                else:
                    response = prometheus.api(
                        "/api/v1/query_range",
                        query=expr,
                        start=f"{end - window}",
                        end=f"{end}",
                        step="2",
                    )
                assert response["status"] == "success", (target, expr, response)
                executions += 1
                if has_data(response["data"]):
                    with_data += 1
                    targets_with_data.add(target)
                    continue
                key = (target.dashboard, target.panel_title, target.ref_id)
                allowed, _reason = EXPECTED_EMPTY.get(key, (frozenset(), ""))
                if provider not in allowed:
                    unexplained.append(f"{key} for {provider or 'all accounts'}: {expr}")
    assert not unexplained, "queries without data:\n" + "\n".join(unexplained)
    all_targets = {t for board in dashboards().values() for t in panel_targets(board)}
    assert targets_with_data == all_targets, all_targets - targets_with_data
    return {
        "distinct template variable queries": sum(
            len(query_variables(b)) for b in dashboards().values()
        ),
        "template variable query executions (all returned values)": variable_calls[0],
        "distinct panel queries": len(all_targets),
        "distinct panel queries returning data": len(targets_with_data),
        "panel query executions (per account on Account detail)": executions,
        "executions returning data": with_data,
        "executions legitimately empty": executions - with_data,
    }


def resolve_variables(
    prometheus: Daemon, board: dict[str, Any], calls: list[int]
) -> list[tuple[dict[str, str], str | None]]:
    """Variable values to run the panels with: All for multi-value variables, every
    combination for single-value ones. Each variable query must return values.
    Returns (values, provider of the assignment or None when all providers)."""
    assignments: list[dict[str, str]] = [{}]
    for variable in query_variables(board):
        expanded: list[dict[str, str]] = []
        for values in assignments:
            selector, label = label_values_query(interpolate(variable["query"], values))
            response = prometheus.api(f"/api/v1/label/{label}/values", **{"match[]": selector})
            calls[0] += 1
            found = sorted(response["data"])
            assert found, f"{board['uid']}: variable {variable['name']} has no values ({selector})"
            multi = is_multi(variable)
            choices = [found] if multi else [[value] for value in found]
            for choice in choices:
                expanded.append({**values, variable["name"]: format_value(choice, multi)})
        assignments = expanded
    single_provider = any(
        v["name"] == "provider" and not is_multi(v) for v in query_variables(board)
    )
    return [(values, values["provider"] if single_provider else None) for values in assignments]


def first_scrape(prometheus: Daemon) -> float:
    """Unix time of the first sample of up{job="saas-quota"}."""
    result = prometheus.api("/api/v1/query", query='up{job="saas-quota"}[10m]')["data"]["result"]
    return min(float(series["values"][0][0]) for series in result)


def unix(rfc3339: str) -> float:
    """Unix time of a Prometheus/Alertmanager timestamp (nanosecond digits dropped)."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", rfc3339).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def has_data(data: dict[str, Any]) -> bool:
    result = data["result"]
    if data["resultType"] == "matrix":
        return any(series["values"] for series in result)
    return bool(result)
