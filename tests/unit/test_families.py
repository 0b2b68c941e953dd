"""exporter.families: what is exported, pinned by a golden file and promtool.

The golden file is rendered from fixed states built out of the recorded vendor
fixtures, so it pins every metric name, label, HELP text and value format of the
contract at once. Regenerate it deliberately with UPDATE_GOLDEN=1. The failure
semantics (docs/metrics.md) are checked on the same snapshot.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.families import families
from exporter.model import AlertPolicy, AlertSettings, Readings, Reason
from exporter.providers import PROVIDERS
from exporter.render import MetricsRenderer
from exporter.state import AccountState, ReloadStatus, StateStore
from tests.exposition import samples
from tests.fakes import up_state
from tests.unit.providers.fixtures import recorded

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "metrics.prom"
NOW = 1_780_000_000.0


def parsed(provider: str, case: str) -> Readings:
    """A recorded success case as its adapter reads it, with the headers it came with."""
    response = recorded(provider, case)
    return PROVIDERS[provider].parse(response.status, response.headers, response.body)


def good(provider: str, account: str, readings: Readings) -> AccountState:
    """An account whose last poll succeeded 30 s ago."""
    return up_state(provider, account, readings, NOW, last_poll_duration=0.25, polls_total=12)


def golden_store() -> StateStore:
    store = StateStore()
    states = [
        good("pictory", "marketing", parsed("pictory", "quota")),
        good("tornado", "trial", parsed("tornado", "usage_key_with_limits")),
        good("piloterr", "scraping", parsed("piloterr", "usage_expiring_key")),
        good("vidnavigator", "odyssey", parsed("vidnavigator", "usage_v3_unlimited")),
        good("vertaaux", "prod", parsed("vertaaux", "quota_pro")),
        # The adapter's default silences the free plan's daily exhaustion.
        good("vertaaux", "free", parsed("vertaaux", "quota_free_exhausted")),
    ]
    # Alert settings from the config: every layer, one meter of its own.
    states[1] = replace(
        states[1],
        alerts=AlertPolicy(
            fleet=AlertSettings(warning=0.85),
            account=AlertSettings(critical=0.9, forecast_horizon=30 * 86400.0),
            meters=(("jobs", AlertSettings(warning=math.inf, forecast=False)),),
        ),
    )
    # A failing account within max_staleness: up 0, errors counted, values kept.
    failing = (
        replace(
            good("pictory", "failing", parsed("pictory", "quota_exhausted")),
            up=False,
            last_error="HTTP 401: Unauthorized",
            consecutive_failures=2,
        )
        .with_error(Reason.AUTH)
        .with_error(Reason.AUTH)
    )
    # A failing account past max_staleness: only the poll bookkeeping remains.
    stale = replace(
        good("vertaaux", "stale", parsed("vertaaux", "quota_agency")),
        up=False,
        last_success=NOW - 3600,
    ).with_error(Reason.TIMEOUT)
    # Configured but never polled yet.
    pending = AccountState(provider="tornado", account="new", interval=300.0, max_staleness=900.0)
    store.set_accounts([*states, failing, stale, pending])
    store.set_reload(ReloadStatus(successful=True, last_success=NOW - 600))
    return store


def render(store: StateStore) -> str:
    """The text exposition of the store's snapshot at NOW, without process metrics."""
    renderer = MetricsRenderer(process_metrics=False)
    return renderer.render(store.snapshot(), NOW).body.decode()


def test_exposition_matches_the_golden_file() -> None:
    text = render(golden_store())
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def test_failure_semantics() -> None:
    text = render(golden_store())
    # Failing within max_staleness: values kept, up 0, the error counted.
    assert value(text, "saas_quota_up", provider="pictory", account="failing") == 0
    assert (
        value(text, "saas_quota_used", provider="pictory", account="failing", meter="video_seconds")
        == 36000
    )
    assert (
        value(
            text,
            "saas_quota_poll_errors_total",
            provider="pictory",
            account="failing",
            reason="auth",
        )
        == 2
    )
    # Stale: no quota series at all, never zeros; bookkeeping remains.
    stale = {k for k in samples(text) if ("account", "stale") in k[1]}
    assert {name for name, _ in stale} == {
        "saas_quota_up",
        "saas_quota_last_success_timestamp_seconds",
        "saas_quota_poll_duration_seconds",
        "saas_quota_polls_total",
        "saas_quota_poll_errors_total",
    }
    # Every reason is pre-initialised for every account, pending ones included.
    for reason in Reason:
        assert (
            value(
                text,
                "saas_quota_poll_errors_total",
                provider="tornado",
                account="new",
                reason=reason.value,
            )
            == 0
        )


def test_unlimited_meters_have_no_limit_or_remaining() -> None:
    text = render(golden_store())
    ids = {"provider": "vidnavigator", "account": "odyssey", "meter": "credits"}
    assert value(text, "saas_quota_unlimited", **ids) == 1
    assert value(text, "saas_quota_limit", **ids) is None
    assert value(text, "saas_quota_remaining", **ids) is None


def test_limit_zero_is_exported_as_zero() -> None:
    store = StateStore()
    readings = parsed("pictory", "quota_voiceover_not_in_plan")
    store.set_accounts(
        [
            AccountState(
                provider="pictory",
                account="a",
                interval=300,
                max_staleness=900,
                up=True,
                polled=True,
                readings=readings,
                last_success=NOW,
            )
        ]
    )
    text = render(store)
    ids = {"provider": "pictory", "account": "a", "meter": "voiceover_seconds"}
    assert value(text, "saas_quota_limit", **ids) == 0
    assert value(text, "saas_quota_remaining", **ids) == 0
    assert value(text, "saas_quota_unlimited", **ids) == 0


def test_help_says_values_are_cached_and_no_sample_has_a_timestamp() -> None:
    text = render(golden_store())
    families = list(text_string_to_metric_families(text))
    used = next(f for f in families if f.name == "saas_quota_used")
    assert "Cached" in used.documentation
    assert "every 5m" in used.documentation
    assert all(s.timestamp is None for f in families for s in f.samples)


@pytest.mark.parametrize("reserved", ["provider", "account", "job", "instance"])
def test_vendor_info_labels_cannot_override_identity_labels(reserved: str) -> None:
    store = StateStore()
    store.set_accounts(
        [
            AccountState(
                provider="pictory",
                account="a",
                interval=300,
                max_staleness=900,
                up=True,
                polled=True,
                readings=Readings(account_info=((reserved, "evil"), ("plan", "pro"))),
                last_success=NOW,
            )
        ]
    )
    text = render(store)
    assert value(text, "saas_quota_account_info", provider="pictory", account="a", plan="pro") == 1


def test_families_is_a_pure_function_of_the_snapshot_and_the_time() -> None:
    snapshot = golden_store().snapshot()
    first = families(snapshot, NOW)
    assert families(snapshot, NOW) == first
    # The same snapshot later: only what expired in between is gone.
    later = {f.name: f for f in families(snapshot, NOW + 3600)}
    assert later["saas_quota_used"].samples == []
    assert later["saas_quota_up"].samples == {f.name: f for f in first}["saas_quota_up"].samples


@pytest.mark.parametrize(("interval", "said"), [(60.0, "every 1m"), (5400.0, "every 1h30m")])
def test_help_names_the_default_interval_the_snapshot_carries(interval: float, said: str) -> None:
    # The store sets it when a config is applied; nothing reaches into the app.
    snapshot = replace(golden_store().snapshot(), default_interval=interval)
    help_of = {f.name: f.documentation for f in families(snapshot, NOW)}
    for name in ("saas_quota_used", "saas_quota_limit", "saas_quota_account_info"):
        assert said in help_of[name], help_of[name]
    assert "every" not in help_of["saas_quota_up"]


# --- alert settings -------------------------------------------------------------------

THRESHOLD = "saas_quota_alert_threshold_ratio"
HORIZON = "saas_quota_alert_forecast_horizon_seconds"


def alert_series(store: StateStore, account: str) -> dict[tuple[str, str | None], float]:
    """(family, severity) -> value of one account's alert settings series."""
    found = {}
    for (name, labels), number in samples(render(store)).items():
        label = dict(labels)
        if name in (THRESHOLD, HORIZON) and label["account"] == account:
            found[(name, label.get("severity"))] = number
    return found


def one(state: AccountState) -> StateStore:
    store = StateStore()
    store.set_accounts([state])
    return store


def test_alert_series_are_exported_only_where_something_sets_them() -> None:
    store = golden_store()
    # No config settings and no adapter default: the rules' defaults, no series.
    for account in ("marketing", "prod", "scraping", "odyssey", "failing"):
        assert alert_series(store, account) == {}, account


def test_the_vertaaux_free_plan_is_silenced_by_its_adapter_default() -> None:
    free = good("vertaaux", "free", parsed("vertaaux", "quota_free_exhausted"))
    assert alert_series(one(free), "free") == {
        (THRESHOLD, "warning"): math.inf,
        (THRESHOLD, "critical"): math.inf,
        (HORIZON, None): 0.0,
    }
    # The default is the adapter's, for the free plan only: a paid plan exports none.
    pro = good("vertaaux", "pro", parsed("vertaaux", "quota_pro"))
    assert alert_series(one(pro), "pro") == {}


def test_the_accounts_config_overrides_the_adapter_default_per_key() -> None:
    free = replace(
        good("vertaaux", "free", parsed("vertaaux", "quota_free_exhausted")),
        alerts=AlertPolicy(
            fleet=AlertSettings(warning=0.85, forecast_horizon=86400.0),
            account=AlertSettings(critical=1.0),
            meters=(("credits", AlertSettings(forecast=True)),),
            adapter=PROVIDERS["vertaaux"].alert_defaults,
        ),
    )
    assert alert_series(one(free), "free") == {
        # global.alerts ranks below the adapter's default: still off.
        (THRESHOLD, "warning"): math.inf,
        # The account's own critical wins over the adapter's: paged when used up.
        (THRESHOLD, "critical"): 1.0,
        # The meter's forecast: true wins, and the horizon falls through to global.
        (HORIZON, None): 86400.0,
    }


def test_alert_series_go_with_the_meters_readings() -> None:
    """Only meters that are exported carry settings: stale values take them along."""
    free = replace(
        good("vertaaux", "free", parsed("vertaaux", "quota_free_exhausted")),
        last_success=NOW - 3600,
    )
    assert alert_series(one(free), "free") == {}
