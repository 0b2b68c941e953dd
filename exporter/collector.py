"""Turning the state store into metric families, and rendering them cheaply.

`QuotaCollector` builds fresh families from the current snapshot on every collect,
as the Prometheus "Writing exporters" guide asks of a proxy exporter: no global
Gauge objects, so an account that is removed, or whose values went stale, simply
stops appearing. `MetricsRenderer` caches the rendered text per snapshot
generation, so a scrape of an unchanged snapshot costs a dictionary lookup.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from exporter import __version__
from exporter.durations import format_duration
from exporter.model import Reason
from exporter.redaction import REDACTOR
from exporter.state import AccountState, ReloadStatus, StateStore

PREFIX: Final = "saas_quota_"
OPENMETRICS_PREFIX: Final = "application/openmetrics-text"
_RESERVED_LABELS: Final = frozenset({"provider", "account", "meter", "job", "instance"})


class QuotaCollector:
    """Every `saas_quota_*` family of docs/metrics.md, from one consistent snapshot."""

    def __init__(
        self,
        store: StateStore,
        clock: Callable[[], float] = time.time,
        default_interval: Callable[[], float] = lambda: 300.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.default_interval = default_interval

    def describe(self) -> list[Metric]:
        # Families depend on the config; nothing to pre-register.
        return []

    def collect(self) -> Iterator[Metric]:
        _, states, reload = self.store.snapshot()
        yield from self.families(states, reload, self.clock())

    def families(
        self, states: tuple[AccountState, ...], reload: ReloadStatus, now: float
    ) -> Iterator[Metric]:
        cached = (
            f"Cached: polled in the background every {format_duration(self.default_interval())}"
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

        for state in states:
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
            info = {"provider": state.provider, "account": state.account, "plan": ""}
            # Vendor text in a label (a plan name the vendor filled with the key):
            # scrubbed like every other road out of the process.
            info.update(
                (name, REDACTOR.scrub(value))
                for name, value in readings.account_info
                if name not in _RESERVED_LABELS
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

        yield from (used, limit, remaining, unlimited, reset, period_start, meter_info)
        yield _info_family(account_info_rows, cached)
        yield from (expiry, key_active, rate_limit, key_cap)
        yield from (up, last_success, duration, polls, errors)

        reload_ok = GaugeMetricFamily(
            PREFIX + "config_last_reload_successful",
            "1 if the last configuration (re)load succeeded.",
        )
        reload_ok.add_metric([], 1.0 if reload.successful else 0.0)
        yield reload_ok
        if reload.last_success is not None:
            reload_time = GaugeMetricFamily(
                PREFIX + "config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration (re)load.",
            )
            reload_time.add_metric([], reload.last_success)
            yield reload_time
        build = GaugeMetricFamily(
            PREFIX + "build_info",
            "Version of saas-quota-exporter (value is always 1).",
            labels=["version"],
        )
        build.add_metric([__version__], 1.0)
        yield build


def _info_family(rows: list[tuple[dict[str, str], float]], cached: str) -> Metric:
    """saas_quota_account_info: label names differ by vendor, so build samples directly."""
    family = GaugeMetricFamily(
        PREFIX + "account_info",
        f"Plan, tier and key details reported by the vendor (value is always 1). {cached}",
    )
    for labels, value in rows:
        family.add_sample(PREFIX + "account_info", labels, value)
    return family


@dataclass(frozen=True)
class Rendered:
    body: bytes
    content_type: str
    content_encoding: str | None


@dataclass(frozen=True)
class Format:
    """One exposition format the renderer can produce; a render cache key.

    There are few of them (see `FORMATS`), whatever the scrapers send: the cache
    is keyed by the format negotiated, never by the raw Accept header.
    """

    name: str  # "text" or "openmetrics"
    version: str
    escaping: str | None  # None: the format has no escaping parameter

    @property
    def content_type(self) -> str:
        media = OPENMETRICS_PREFIX if self.name == "openmetrics" else "text/plain"
        # Built from our own fields: the Content-Type never echoes a client's text.
        suffix = "" if self.escaping is None else f"; escaping={self.escaping}"
        return f"{media}; version={self.version}; charset=utf-8{suffix}"


# The escaping schemes prometheus_client can negotiate (its own fixed list).
_ESCAPINGS: Final = ("allow-utf-8", "underscores", "dots", "values")
TEXT_0_0_4: Final = Format("text", "0.0.4", None)
FORMATS: Final = frozenset(
    {TEXT_0_0_4}
    | {Format("text", "1.0.0", e) for e in _ESCAPINGS}
    | {Format("openmetrics", "1.0.0", e) for e in _ESCAPINGS}
)


def negotiate(accept: str | None) -> tuple[Format, Callable[..., bytes]]:
    """The format and encoder prometheus_client's choose_encoder picks for `accept`.

    Its pick is mapped onto `FORMATS`: it echoes any version at or above 1.0.0
    ("version=1.0.7" gives "version=1.0.7" back), which would make every such
    header a cache entry of its own, and it raises TypeError on a version part that
    is not a number ("version=abc"), which would fail the scrape. For our families
    (no native histograms, legacy metric names) every version it accepts renders
    the same bytes, so the canonical 1.0.0 is the honest answer.
    """
    try:
        encoder, content_type = choose_encoder(accept or "")
    except (TypeError, ValueError):
        return TEXT_0_0_4, generate_latest
    params = [part.strip() for part in content_type.split(";")]
    escaping = next(
        (p.removeprefix("escaping=") for p in params if p.startswith("escaping=")), None
    )
    if escaping is not None and escaping not in _ESCAPINGS:
        escaping = "underscores"
    if params[0] == OPENMETRICS_PREFIX:
        return Format("openmetrics", "1.0.0", escaping or "underscores"), encoder
    if "version=0.0.4" in params or escaping is None:
        return TEXT_0_0_4, generate_latest
    return Format("text", "1.0.0", escaping), encoder


class MetricsRenderer:
    """Renders /metrics, re-rendering the quota part only when the snapshot changed.

    The cache key is the store generation plus the set of accounts whose values
    have expired since, so staleness drops series even when no poll happens; within
    one snapshot it holds one entry per negotiated `Format`, so at most
    len(FORMATS) entries whatever the Accept headers. The process and runtime
    metrics are cheap and always current, so they are rendered on every scrape and
    appended. Compression runs per scrape on the joined body and is not cached.
    """

    def __init__(self, collector: QuotaCollector, *, process_metrics: bool = True) -> None:
        self.collector = collector
        self._quota_registry = CollectorRegistry(auto_describe=False)
        self._quota_registry.register(collector)
        self._runtime_registry = CollectorRegistry(auto_describe=False)
        if process_metrics:
            ProcessCollector(registry=self._runtime_registry)
            PlatformCollector(registry=self._runtime_registry)
            GCCollector(registry=self._runtime_registry)
        self._lock = threading.Lock()
        self._cache_key: tuple[object, ...] | None = None
        self._cache: dict[Format, bytes] = {}  # negotiated format -> rendered quota part
        self.renders = 0  # how often the quota part was rendered (tests, benchmarks)

    @property
    def cached_formats(self) -> frozenset[Format]:
        """The formats the cache holds a rendering of (for tests and benchmarks)."""
        with self._lock:
            return frozenset(self._cache)

    def render(self, accept: str | None, accept_encoding: str | None) -> Rendered:
        fmt, encoder = negotiate(accept)
        now = self.collector.clock()
        generation, states, reload = self.collector.store.snapshot()
        expired = tuple(s.key for s in states if s.readings is not None and s.is_stale(now))
        snapshot_key = (generation, expired)
        with self._lock:
            if snapshot_key != self._cache_key:
                # Only the newest snapshot is worth keeping, in every format asked for
                # (Prometheus asks for OpenMetrics, curl for text: both stay cached).
                self._cache_key = snapshot_key
                self._cache = {}
            quota = self._cache.get(fmt)
            if quota is None:
                quota = encoder(_Frozen(self.collector, states, reload, now))
                if fmt.name == "openmetrics":
                    quota = quota.removesuffix(b"# EOF\n")
                self._cache[fmt] = quota
                self.renders += 1
        body = quota + encoder(self._runtime_registry)
        if accept_encoding and accepts_gzip(accept_encoding):
            return Rendered(gzip.compress(body, compresslevel=1), fmt.content_type, "gzip")
        return Rendered(body, fmt.content_type, None)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (RFC 9110 12.5.3).

    `gzip;q=0` forbids it; `*` allows it unless gzip is named on its own.
    """
    qualities: dict[str, float] = {}
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0  # unreadable weight: do not guess in favour
        qualities[coding.strip()] = quality
    if "gzip" in qualities:
        return qualities["gzip"] > 0
    return qualities.get("*", 0.0) > 0


class _Frozen:
    """A registry stand-in that yields the families of one already-taken snapshot."""

    def __init__(
        self,
        collector: QuotaCollector,
        states: tuple[AccountState, ...],
        reload: ReloadStatus,
        now: float,
    ) -> None:
        self._families = (collector, states, reload, now)

    def collect(self) -> Iterator[Metric]:
        collector, states, reload, now = self._families
        return collector.families(states, reload, now)
