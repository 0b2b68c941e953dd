"""How `/metrics` is encoded: format negotiation, a bounded render cache, gzip.

What is exported is `exporter.families`; this module turns those families into the
bytes of one answer. `MetricsRenderer` caches the rendered text per snapshot
generation, so a scrape of an unchanged snapshot costs a dictionary lookup.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from exporter.families import families
from exporter.state import Snapshot

OPENMETRICS_PREFIX: Final = "application/openmetrics-text"


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

    It holds no state of the exporter's: each call is handed the one snapshot its
    request took (snapshots of one store: their generations are its cache key). The
    cache key is the snapshot's generation plus the set of accounts whose values
    have expired since, so staleness drops series even when no poll happens; within
    one snapshot it holds one entry per negotiated `Format`, so at most
    len(FORMATS) entries whatever the Accept headers. The process and runtime
    metrics are cheap and always current, so they are rendered on every scrape and
    appended. Compression runs per scrape on the joined body and is not cached.
    """

    def __init__(self, *, process_metrics: bool = True) -> None:
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

    def render(
        self,
        snapshot: Snapshot,
        now: float,
        accept: str | None = None,
        accept_encoding: str | None = None,
    ) -> Rendered:
        """/metrics for `snapshot` at `now`, in the format `accept` negotiates."""
        fmt, encoder = negotiate(accept)
        expired = tuple(
            s.key for s in snapshot.accounts if s.readings is not None and s.is_stale(now)
        )
        snapshot_key = (snapshot.generation, expired)
        with self._lock:
            if snapshot_key != self._cache_key:
                # Only the newest snapshot is worth keeping, in every format asked for
                # (Prometheus asks for OpenMetrics, curl for text: both stay cached).
                self._cache_key = snapshot_key
                self._cache = {}
            quota = self._cache.get(fmt)
            if quota is None:
                quota = encoder(_Families(families(snapshot, now)))
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


class _Families(Collector):
    """Families already built, in the shape prometheus_client's encoders read."""

    def __init__(self, built: Sequence[Metric]) -> None:
        self._built = built

    def collect(self) -> Iterator[Metric]:
        return iter(self._built)
