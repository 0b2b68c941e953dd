"""What `/metrics` exports: every `saas_quota_*` family of one snapshot.

`families` is a pure function of a `Snapshot` and the time, as the Prometheus
"Writing exporters" guide asks of a proxy exporter: families are built fresh from
the snapshot, no global Gauge objects, so an account that is removed, or whose
values went stale, simply stops appearing. How they are encoded and cached is
`exporter.render`'s business; docs/metrics.md is the contract they keep.
"""

from __future__ import annotations

from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter import __version__
from exporter.durations import format_duration
from exporter.model import Reason
from exporter.state import Snapshot

PREFIX: Final = "saas_quota_"
_RESERVED_LABELS: Final = frozenset({"provider", "account", "meter", "job", "instance"})


def families(snapshot: Snapshot, now: float) -> tuple[Metric, ...]:
    """Every family of docs/metrics.md for `snapshot`, with values stale at `now` left out."""
    cached = (
        f"Cached: polled in the background every {format_duration(snapshot.default_interval)}"
        " by default (per-account intervals may differ), never on scrape."
    )
    acct = ["provider", "account"]
    meter = [*acct, "meter"]
    used = GaugeMetricFamily(
        PREFIX + "used",
        f"Quota consumed in the current window (lifetime for lifetime meters). {cached}",
        labels=meter,
    )
    limit = GaugeMetricFamily(
        PREFIX + "limit",
        f"Quota cap for the window; absent when unlimited or unknown. {cached}",
        labels=meter,
    )
    remaining = GaugeMetricFamily(
        PREFIX + "remaining",
        "Quota left: the vendor's figure, else max(limit - used, 0); absent when"
        f" unlimited. {cached}",
        labels=meter,
    )
    unlimited = GaugeMetricFamily(
        PREFIX + "unlimited",
        f"1 when the vendor says this meter is unlimited, else 0. {cached}",
        labels=meter,
    )
    reset = GaugeMetricFamily(
        PREFIX + "reset_timestamp_seconds",
        f"Unix time when the quota window resets or the period ends. {cached}",
        labels=meter,
    )
    period_start = GaugeMetricFamily(
        PREFIX + "period_start_timestamp_seconds",
        f"Unix time the current quota window began. {cached}",
        labels=meter,
    )
    meter_info = GaugeMetricFamily(
        PREFIX + "meter_info",
        f"Unit of each meter, for display (value is always 1). {cached}",
        labels=[*meter, "unit"],
    )
    threshold = GaugeMetricFamily(
        PREFIX + "alert_threshold_ratio",
        "Used share of the limit at which SaasQuotaAlmostExhausted fires with this severity"
        " (+Inf: off; a critical one above 1 also silences SaasQuotaExhausted), where the"
        " config or the adapter sets one; absent: the alert rules' default.",
        labels=[*meter, "severity"],
    )
    horizon = GaugeMetricFamily(
        PREFIX + "alert_forecast_horizon_seconds",
        "How far the forecast alerts look ahead for a meter without a reset (0: forecast"
        " alerts off), where the config or the adapter sets it; absent: the alert rules'"
        " default.",
        labels=meter,
    )
    account_info_rows: list[tuple[dict[str, str], float]] = []
    expiry = GaugeMetricFamily(
        PREFIX + "api_key_expiry_timestamp_seconds",
        f"Unix time the API key expires, where the vendor reports it. {cached}",
        labels=acct,
    )
    key_active = GaugeMetricFamily(
        PREFIX + "api_key_active",
        f"1 if the vendor reports the API key active, 0 if inactive. {cached}",
        labels=acct,
    )
    rate_limit = GaugeMetricFamily(
        PREFIX + "rate_limit_requests",
        f"Requests the plan allows per window, where the vendor reports it. {cached}",
        labels=[*acct, "window"],
    )
    key_cap = GaugeMetricFamily(
        PREFIX + "key_cap",
        f"Per-request caps of the API key that are not consumed. {cached}",
        labels=[*acct, "cap"],
    )
    up = GaugeMetricFamily(
        PREFIX + "up",
        "1 if the last poll of the vendor's quota endpoint succeeded, else 0.",
        labels=acct,
    )
    last_success = GaugeMetricFamily(
        PREFIX + "last_success_timestamp_seconds",
        "Unix time of the last successful poll.",
        labels=acct,
    )
    duration = GaugeMetricFamily(
        PREFIX + "poll_duration_seconds",
        "Duration of the last poll of the vendor's quota endpoint.",
        labels=acct,
    )
    polls = CounterMetricFamily(
        PREFIX + "polls",
        "Requests made to the vendor's quota endpoint.",
        labels=acct,
    )
    errors = CounterMetricFamily(
        PREFIX + "poll_errors",
        "Failed polls by reason: " + ", ".join(r.value for r in Reason) + ".",
        labels=[*acct, "reason"],
    )

    for state in snapshot.accounts:
        ids = [state.provider, state.account]
        up.add_metric(ids, 1.0 if state.up else 0.0)
        polls.add_metric(ids, float(state.polls_total))
        for reason, count in state.errors_total:
            errors.add_metric([*ids, reason.value], float(count))
        if state.last_success is not None:
            last_success.add_metric(ids, state.last_success)
        if state.last_poll_duration is not None:
            duration.add_metric(ids, state.last_poll_duration)

        readings = state.fresh_readings(now)
        if readings is None:
            continue
        for m in readings.meters:
            labels = [*ids, m.meter]
            meter_info.add_metric([*labels, m.unit], 1.0)
            unlimited.add_metric(labels, 1.0 if m.unlimited else 0.0)
            if m.used is not None:
                used.add_metric(labels, m.used)
            if m.limit is not None:
                limit.add_metric(labels, m.limit)
            left = m.effective_remaining
            if left is not None:
                remaining.add_metric(labels, left)
            if m.reset_timestamp is not None:
                reset.add_metric(labels, m.reset_timestamp)
            if m.period_start_timestamp is not None:
                period_start.add_metric(labels, m.period_start_timestamp)
            settings = state.alerts.settings(readings, m)
            for severity, ratio in (("warning", settings.warning), ("critical", settings.critical)):
                if ratio is not None:
                    threshold.add_metric([*labels, severity], ratio)
            if settings.horizon is not None:
                horizon.add_metric(labels, settings.horizon)
        info = {"provider": state.provider, "account": state.account, "plan": ""}
        info.update(
            (name, value) for name, value in readings.account_info if name not in _RESERVED_LABELS
        )
        account_info_rows.append((info, 1.0))
        if readings.api_key_expiry_timestamp is not None:
            expiry.add_metric(ids, readings.api_key_expiry_timestamp)
        if readings.api_key_active is not None:
            key_active.add_metric(ids, 1.0 if readings.api_key_active else 0.0)
        for window, value in readings.rate_limits:
            rate_limit.add_metric([*ids, window], value)
        for cap, value in readings.key_caps:
            key_cap.add_metric([*ids, cap], value)

    exported: list[Metric] = [used, limit, remaining, unlimited, reset, period_start, meter_info]
    exported += (threshold, horizon)
    exported.append(_info_family(account_info_rows, cached))
    exported += (expiry, key_active, rate_limit, key_cap)
    exported += (up, last_success, duration, polls, errors)

    reload_ok = GaugeMetricFamily(
        PREFIX + "config_last_reload_successful",
        "1 if the last configuration (re)load succeeded.",
    )
    reload = snapshot.reload
    reload_ok.add_metric([], 1.0 if reload.successful else 0.0)
    exported.append(reload_ok)
    if reload.last_success is not None:
        reload_time = GaugeMetricFamily(
            PREFIX + "config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration (re)load.",
        )
        reload_time.add_metric([], reload.last_success)
        exported.append(reload_time)
    build = GaugeMetricFamily(
        PREFIX + "build_info",
        "Version of saas-quota-exporter (value is always 1).",
        labels=["version"],
    )
    build.add_metric([__version__], 1.0)
    exported.append(build)
    return tuple(exported)


def _info_family(rows: list[tuple[dict[str, str], float]], cached: str) -> Metric:
    """saas_quota_account_info: label names differ by vendor, so build samples directly."""
    family = GaugeMetricFamily(
        PREFIX + "account_info",
        f"Plan, tier and key details reported by the vendor (value is always 1). {cached}",
    )
    for labels, value in rows:
        family.add_sample(PREFIX + "account_info", labels, value)
    return family
