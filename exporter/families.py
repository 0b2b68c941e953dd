"""What `/metrics` exports: every `saas_quota_*` family of one snapshot.

`families` is a pure function of a `Snapshot` and the time, as the Prometheus
"Writing exporters" guide asks of a proxy exporter: families are built fresh from
the snapshot, no global Gauge objects, so an account that is removed, or whose
values went stale, simply stops appearing. How they are encoded and cached is
`exporter.render`'s business; docs/metrics.md is the contract they keep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from prometheus_client.core import Metric

from exporter import __version__
from exporter.durations import format_duration
from exporter.model import Reason
from exporter.state import AccountState, Snapshot

PREFIX: Final = "saas_quota_"
_RESERVED_LABELS: Final = frozenset({"provider", "account", "meter", "job", "instance"})


# How fresh a scrape's bytes are: exporter.render serves an exposition its
# background thread rebuilt when the store changed, at most once per
# render.MIN_REBUILD_SECONDS (1 s), so a scrape can trail the latest poll by that
# plus one rebuild.
FRESHNESS: Final = "Served pre-rendered, at most 1s plus one render behind the latest poll."

# A sample as prometheus_client's encoders read it: name, labels, value.
Sample = tuple[str, dict[str, str], float]


@dataclass(frozen=True)
class Family:
    """One exported family: the header of its block in the exposition."""

    name: str  # without `_total` for a counter (prometheus_client's convention)
    type: str  # "gauge" or "counter"
    # May hold "{cached}" (the polling sentence, which depends on the config) and
    # "{fresh}" (FRESHNESS, else appended at the end).
    help: str
    labels: tuple[str, ...] = ()  # empty for account_info: its names vary by vendor
    # Whether the HELP says how fresh the served bytes are (not for constants).
    changes: bool = True

    def documentation(self, cached: str) -> str:
        text = self.help.format(cached=cached, fresh=FRESHNESS)
        if not self.changes or "{fresh}" in self.help:
            return text
        return f"{text} {FRESHNESS}"

    def metric(self, cached: str) -> Metric:
        return Metric(self.name, self.documentation(cached), self.type)


_ACCT: Final = ("provider", "account")
_METER: Final = (*_ACCT, "meter")

# The families with a block of samples per account, in exposition order: an
# account's `account_samples` has one tuple per entry, so the exposition is each
# family's header followed by every account's samples of it (exporter.render joins
# per-account fragments that way).
ACCOUNT_FAMILIES: Final = (
    Family(
        PREFIX + "used",
        "gauge",
        "Quota consumed in the current window (lifetime for lifetime meters). {cached}",
        _METER,
    ),
    Family(
        PREFIX + "limit",
        "gauge",
        "Quota cap for the window; absent when unlimited or unknown. {cached}",
        _METER,
    ),
    Family(
        PREFIX + "remaining",
        "gauge",
        "Quota left: the vendor's figure, else max(limit - used, 0); absent when"
        " unlimited. {cached}",
        _METER,
    ),
    Family(
        PREFIX + "unlimited",
        "gauge",
        "1 when the vendor says this meter is unlimited, else 0. {cached}",
        _METER,
    ),
    Family(
        PREFIX + "reset_timestamp_seconds",
        "gauge",
        "Unix time when the quota window resets or the period ends. {cached}",
        _METER,
    ),
    Family(
        PREFIX + "period_start_timestamp_seconds",
        "gauge",
        "Unix time the current quota window began. {cached}",
        _METER,
    ),
    Family(
        PREFIX + "meter_info",
        "gauge",
        "Unit of each meter, for display (value is always 1). {cached}",
        (*_METER, "unit"),
    ),
    Family(
        PREFIX + "alert_threshold_ratio",
        "gauge",
        "Used share of the limit at which SaasQuotaAlmostExhausted fires with this severity"
        " (+Inf: off; a critical one above 1 also silences SaasQuotaExhausted), where the"
        " config or the adapter sets one; absent: the alert rules' default.",
        (*_METER, "severity"),
    ),
    Family(
        PREFIX + "alert_forecast_horizon_seconds",
        "gauge",
        "How far the forecast alerts look ahead for a meter without a reset (0: forecast"
        " alerts off), where the config or the adapter sets it; absent: the alert rules'"
        " default.",
        _METER,
    ),
    Family(
        PREFIX + "account_info",
        "gauge",
        "Plan, tier and key details reported by the vendor (value is always 1). {cached}",
    ),
    Family(
        PREFIX + "api_key_expiry_timestamp_seconds",
        "gauge",
        "Unix time the API key expires, where the vendor reports it. {cached}",
        _ACCT,
    ),
    Family(
        PREFIX + "api_key_active",
        "gauge",
        "1 if the vendor reports the API key active, 0 if inactive. {cached}",
        _ACCT,
    ),
    Family(
        PREFIX + "rate_limit_requests",
        "gauge",
        "Requests the plan allows per window, where the vendor reports it. {cached}",
        (*_ACCT, "window"),
    ),
    Family(
        PREFIX + "key_cap",
        "gauge",
        "Per-request caps of the API key that are not consumed. {cached}",
        (*_ACCT, "cap"),
    ),
    Family(
        PREFIX + "up",
        "gauge",
        "1 if the last poll of the vendor's quota endpoint succeeded, else 0.",
        _ACCT,
    ),
    Family(
        PREFIX + "last_success_timestamp_seconds",
        "gauge",
        "Unix time of the last successful poll.",
        _ACCT,
    ),
    Family(
        PREFIX + "poll_duration_seconds",
        "gauge",
        "Duration of the last poll of the vendor's quota endpoint.",
        _ACCT,
    ),
    Family(PREFIX + "polls", "counter", "Requests made to the vendor's quota endpoint.", _ACCT),
    Family(
        PREFIX + "poll_errors",
        "counter",
        # The freshness first: the reason list ends the text (tests/unit/test_docs.py reads it).
        "Failed polls. {fresh} By reason: " + ", ".join(r.value for r in Reason) + ".",
        (*_ACCT, "reason"),
    ),
)
RELOAD_OK: Final = Family(
    PREFIX + "config_last_reload_successful",
    "gauge",
    "1 if the last configuration (re)load succeeded.",
)
RELOAD_TIME: Final = Family(
    PREFIX + "config_last_reload_success_timestamp_seconds",
    "gauge",
    "Unix time of the last successful configuration (re)load.",
)
# Constant for the process's life: its HELP makes no freshness claim.
BUILD_INFO: Final = Family(
    PREFIX + "build_info",
    "gauge",
    "Version of saas-quota-exporter (value is always 1).",
    ("version",),
    changes=False,
)
# Constant for the process's life too (the shard flags are read once at start).
SHARD_INFO: Final = Family(
    PREFIX + "shard_info",
    "gauge",
    "The shard of the accounts this replica polls and serves (value is always 1);"
    " present only when the accounts are sharded.",
    ("index", "count"),
    changes=False,
)


def cached_sentence(default_interval: float) -> str:
    """The polling sentence of the quota families' HELP, for the config's interval."""
    return (
        f"Cached: polled in the background every {format_duration(default_interval)}"
        " by default (per-account intervals may differ), never on scrape."
    )


def account_samples(state: AccountState, now: float) -> tuple[tuple[Sample, ...], ...]:
    """One account's samples of each of ACCOUNT_FAMILIES (in that order) at `now`.

    A pure function of the state and whether its values are stale at `now`: that
    pair is what exporter.render keys an account's cached fragments by.
    """
    ids = {"provider": state.provider, "account": state.account}
    used: list[Sample] = []
    limit: list[Sample] = []
    remaining: list[Sample] = []
    unlimited: list[Sample] = []
    reset: list[Sample] = []
    period_start: list[Sample] = []
    meter_info: list[Sample] = []
    threshold: list[Sample] = []
    horizon: list[Sample] = []
    account_info: list[Sample] = []
    expiry: list[Sample] = []
    key_active: list[Sample] = []
    rate_limit: list[Sample] = []
    key_cap: list[Sample] = []
    up: list[Sample] = [(PREFIX + "up", ids, 1.0 if state.up else 0.0)]
    polls: list[Sample] = [(PREFIX + "polls_total", ids, float(state.polls_total))]
    errors: list[Sample] = [
        (PREFIX + "poll_errors_total", {**ids, "reason": reason.value}, float(count))
        for reason, count in state.errors_total
    ]
    last_success: list[Sample] = []
    if state.last_success is not None:
        last_success.append((PREFIX + "last_success_timestamp_seconds", ids, state.last_success))
    duration: list[Sample] = []
    if state.last_poll_duration is not None:
        duration.append((PREFIX + "poll_duration_seconds", ids, state.last_poll_duration))

    readings = state.fresh_readings(now)
    if readings is not None:
        for m in readings.meters:
            labels = {**ids, "meter": m.meter}
            meter_info.append((PREFIX + "meter_info", {**labels, "unit": m.unit}, 1.0))
            unlimited.append((PREFIX + "unlimited", labels, 1.0 if m.unlimited else 0.0))
            if m.used is not None:
                used.append((PREFIX + "used", labels, m.used))
            if m.limit is not None:
                limit.append((PREFIX + "limit", labels, m.limit))
            left = m.effective_remaining
            if left is not None:
                remaining.append((PREFIX + "remaining", labels, left))
            if m.reset_timestamp is not None:
                reset.append((PREFIX + "reset_timestamp_seconds", labels, m.reset_timestamp))
            if m.period_start_timestamp is not None:
                period_start.append(
                    (PREFIX + "period_start_timestamp_seconds", labels, m.period_start_timestamp)
                )
            settings = state.alerts.settings(readings, m)
            for severity, ratio in (("warning", settings.warning), ("critical", settings.critical)):
                if ratio is not None:
                    threshold.append(
                        (PREFIX + "alert_threshold_ratio", {**labels, "severity": severity}, ratio)
                    )
            if settings.horizon is not None:
                horizon.append(
                    (PREFIX + "alert_forecast_horizon_seconds", labels, settings.horizon)
                )
        info = {"provider": state.provider, "account": state.account, "plan": ""}
        info.update(
            (name, value) for name, value in readings.account_info if name not in _RESERVED_LABELS
        )
        account_info.append((PREFIX + "account_info", info, 1.0))
        if readings.api_key_expiry_timestamp is not None:
            expiry.append(
                (
                    PREFIX + "api_key_expiry_timestamp_seconds",
                    ids,
                    readings.api_key_expiry_timestamp,
                )
            )
        if readings.api_key_active is not None:
            key_active.append(
                (PREFIX + "api_key_active", ids, 1.0 if readings.api_key_active else 0.0)
            )
        for window, value in readings.rate_limits:
            rate_limit.append((PREFIX + "rate_limit_requests", {**ids, "window": window}, value))
        for cap, value in readings.key_caps:
            key_cap.append((PREFIX + "key_cap", {**ids, "cap": cap}, value))
    blocks = (
        used,
        limit,
        remaining,
        unlimited,
        reset,
        period_start,
        meter_info,
        threshold,
        horizon,
        account_info,
        expiry,
        key_active,
        rate_limit,
        key_cap,
        up,
        last_success,
        duration,
        polls,
        errors,
    )
    return tuple(tuple(block) for block in blocks)


def tail_families(snapshot: Snapshot) -> tuple[tuple[Family, tuple[Sample, ...]], ...]:
    """The families after the per-account ones: reload status, build and shard info."""
    reload = snapshot.reload
    tail: list[tuple[Family, tuple[Sample, ...]]] = [
        (RELOAD_OK, ((RELOAD_OK.name, {}, 1.0 if reload.successful else 0.0),))
    ]
    if reload.last_success is not None:
        tail.append((RELOAD_TIME, ((RELOAD_TIME.name, {}, reload.last_success),)))
    tail.append((BUILD_INFO, ((BUILD_INFO.name, {"version": __version__}, 1.0),)))
    if snapshot.shard is not None:
        index, count = snapshot.shard
        tail.append(
            (SHARD_INFO, ((SHARD_INFO.name, {"index": str(index), "count": str(count)}, 1.0),))
        )
    return tuple(tail)


def families(snapshot: Snapshot, now: float) -> tuple[Metric, ...]:
    """Every family of docs/metrics.md for `snapshot`, with values stale at `now` left out.

    The reference the fast encoder of exporter.render is proven byte-identical to
    (prometheus_client's encoders on these families).
    """
    cached = cached_sentence(snapshot.default_interval)
    built = [family.metric(cached) for family in ACCOUNT_FAMILIES]
    for state in snapshot.accounts:
        for metric, block in zip(built, account_samples(state, now), strict=True):
            for name, labels, value in block:
                metric.add_sample(name, labels, value)
    for family, samples in tail_families(snapshot):
        metric = family.metric(cached)
        for name, labels, value in samples:
            metric.add_sample(name, labels, value)
        built.append(metric)
    return tuple(built)
