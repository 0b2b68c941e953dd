"""How `/metrics` is encoded: format negotiation, pre-rendered bytes, gzip.

What is exported is `exporter.families`; this module turns those families into the
bytes of one answer. A scrape never renders: `MetricsRenderer.start` runs a thread
that keeps the latest complete exposition of each format scrapers ask for (plain and
raw-deflated for gzip) and a scrape sends those bytes plus the small process and
runtime metrics. A change costs work proportional to what changed: each account's
lines of each family are encoded once per (state object, stale or not) and kept;
a rebuild joins the kept fragments per family (a memory copy) and recompresses only
the blocks of accounts that changed.

The encoder is this module's own (prometheus_client's costs ~20 us a series and
re-encodes everything); tests/unit/test_render.py proves it byte-identical to
prometheus_client's encoders on the same families, golden and randomised.
"""

from __future__ import annotations

import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from prometheus_client.validation import _is_valid_legacy_metric_name

from exporter.families import (
    ACCOUNT_FAMILIES,
    Family,
    Sample,
    account_samples,
    cached_sentence,
    tail_families,
)
from exporter.state import AccountState, Snapshot

OPENMETRICS_PREFIX: Final = "application/openmetrics-text"
# A change reaches the served bytes within this (plus one rebuild): changes landing
# meanwhile are coalesced into one rebuild. exporter.families.FRESHNESS says so.
MIN_REBUILD_SECONDS: Final = 1.0
# How often the renderer thread looks at the store's generation and the clock.
_TICK_SECONDS: Final = 0.1
# A format (or its gzip variant) nobody asked for in this long is no longer rebuilt.
_DEMAND_SECONDS: Final = 600.0
# How long a scrape of a format not yet built waits for the renderer thread before
# it builds the bytes itself (only when that thread is stuck or gone).
_FIRST_BUILD_WAIT_SECONDS: Final = 30.0
# A rebuild this quick is waited for by a scrape that finds the bytes behind.
_CHEAP_BUILD_SECONDS: Final = 0.02
# Accounts per compressed block: a change recompresses its block of each family.
_BLOCK: Final = 32
_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, no mtime


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


def reference_encoder(fmt: Format) -> Callable[[Collector], bytes]:
    """prometheus_client's encoder for `fmt`: what `negotiate` hands back for it."""
    if fmt == TEXT_0_0_4:
        return generate_latest
    if fmt.name == "text":
        return partial(generate_latest, escaping=fmt.escaping or openmetrics.UNDERSCORES)
    escaping = fmt.escaping or openmetrics.UNDERSCORES
    return partial(openmetrics.generate_latest, escaping=escaping, version=fmt.version)


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


class Encoder:
    """Family blocks of one `Format`, byte for byte what prometheus_client writes.

    Headers come from prometheus_client itself (an empty family, rendered once per
    HELP text); sample lines are built here with its own name escapers and
    `floatToGoString`, so only the line shape and the label-value escaping are
    ours (tests/unit/test_render.py holds them to its output). Metric names are ours and
    legacy-valid; label names may come from a vendor and go through its escaper.
    """

    def __init__(self, fmt: Format) -> None:
        self.format = fmt
        self._reference = reference_encoder(fmt)
        self._escaping = fmt.escaping or openmetrics.UNDERSCORES
        self._names: dict[str, str] = {}
        self._label_names: dict[str, str] = {}
        self._headers: dict[tuple[Family, str], bytes] = {}

    def header(self, family: Family, cached: str) -> bytes:
        key = (family, cached)
        header = self._headers.get(key)
        if header is None:
            header = self._reference(_Families([family.metric(cached)])).removesuffix(b"# EOF\n")
            if len(self._headers) > 4 * (len(ACCOUNT_FAMILIES) + 3):
                self._headers.clear()  # the default interval changed a few times
            self._headers[key] = header
        return header

    def _name(self, name: str) -> str:
        escaped = self._names.get(name)
        if escaped is None:
            if not _is_valid_legacy_metric_name(name):
                raise ValueError(f"metric name {name!r} is not a legacy Prometheus name")
            if self.format.name == "openmetrics":
                escaped = openmetrics._escape(
                    name,
                    self._escaping,
                    openmetrics._is_legacy_labelname_rune,
                )
            else:
                escaped = openmetrics.escape_metric_name(name, self._escaping)
            self._names[name] = escaped
        return escaped

    def _label_name(self, name: str) -> str:
        escaped = self._label_names.get(name)
        if escaped is None:
            escaped = openmetrics.escape_label_name(name, self._escaping)
            if len(self._label_names) < 10_000:  # vendor-chosen names: bounded
                self._label_names[name] = escaped
        return escaped

    def lines(self, samples: Sequence[Sample]) -> bytes:
        out: list[str] = []
        for name, labels, value in samples:
            prefix = self._name(name)
            if labels:
                pairs = ",".join(
                    [
                        f'{self._label_name(k)}="'
                        + v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
                        + '"'
                        for k, v in sorted(labels.items())
                    ]
                )
                out.append(f"{prefix}{{{pairs}}} {_go_float(value)}\n")
            else:
                out.append(f"{prefix} {_go_float(value)}\n")
        return "".join(out).encode("utf-8")


@dataclass(frozen=True)
class Built:
    """One format's quota exposition of one snapshot (no runtime metrics, no EOF).

    `deflated` is `body` as raw deflate ending in a sync flush, so a scrape appends
    the runtime metrics' own deflate stream and a trailer (see `gzip_answer`).
    """

    body: bytes
    crc: int  # zlib.crc32 of body
    deflated: bytes | None


def _deflate(data: bytes) -> bytes:
    """`data` as byte-aligned raw deflate with no back references outside it."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


def gzip_answer(built: Built, runtime: bytes) -> bytes:
    """One gzip member of built.body + runtime, from the kept deflate blocks."""
    assert built.deflated is not None
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    last = compressor.compress(runtime) + compressor.flush(zlib.Z_FINISH)
    size = (len(built.body) + len(runtime)) & 0xFFFFFFFF
    trailer = struct.pack("<II", zlib.crc32(runtime, built.crc), size)
    return b"".join((_GZIP_HEADER, built.deflated, last, trailer))


@dataclass
class _Fragments:
    state: AccountState
    stale: bool
    blocks: tuple[bytes, ...]  # one per ACCOUNT_FAMILIES entry


@dataclass
class FormatCache:
    """The kept fragments of one format; used by one thread at a time."""

    encoder: Encoder
    accounts: dict[tuple[str, str], _Fragments] = field(default_factory=dict)
    # (family index, block index) -> (the fragments it was made of, their deflate)
    deflated: dict[tuple[int, int], tuple[tuple[bytes, ...], bytes]] = field(default_factory=dict)
    encoded: int = 0  # accounts encoded so far (tests, benchmarks)

    def build(self, snapshot: Snapshot, now: float, *, deflate: bool) -> Built:
        cached = cached_sentence(snapshot.default_interval)
        encoder = self.encoder
        kept: dict[tuple[str, str], _Fragments] = {}
        rows: list[tuple[bytes, ...]] = []
        for state in snapshot.accounts:
            stale = state.is_stale(now)
            entry = self.accounts.get(state.key)
            if entry is None or entry.state is not state or entry.stale is not stale:
                blocks = tuple(encoder.lines(b) for b in account_samples(state, now))
                entry = _Fragments(state, stale, blocks)
                self.encoded += 1
            kept[state.key] = entry
            rows.append(entry.blocks)
        self.accounts = kept  # accounts reloaded away are forgotten here

        headers = [encoder.header(family, cached) for family in ACCOUNT_FAMILIES]
        tail = b"".join(
            encoder.header(family, cached) + encoder.lines(samples)
            for family, samples in tail_families(snapshot)
        )
        parts: list[bytes] = []
        for index, header in enumerate(headers):
            parts.append(header)
            parts.extend(row[index] for row in rows)
        parts.append(tail)
        body = b"".join(parts)
        deflated = self._deflate(headers, rows, tail) if deflate else None
        return Built(body, zlib.crc32(body), deflated)

    def _deflate(self, headers: list[bytes], rows: list[tuple[bytes, ...]], tail: bytes) -> bytes:
        """The body as raw deflate, reusing the blocks whose accounts did not change."""
        previous = self.deflated
        kept: dict[tuple[int, int], tuple[tuple[bytes, ...], bytes]] = {}
        out: list[bytes] = []
        for index, header in enumerate(headers):
            segments: list[tuple[bytes, ...]] = [(header,)]
            segments += [
                tuple(row[index] for row in rows[start : start + _BLOCK])
                for start in range(0, len(rows), _BLOCK)
            ]
            for number, segment in enumerate(segments):
                old = previous.get((index, number))
                # Tuples compare elementwise by identity first: unchanged accounts'
                # fragments are the same objects, so this is cheap when it matches.
                packed = old[1] if old is not None and old[0] == segment else None
                if packed is None:
                    packed = _deflate(b"".join(segment))
                kept[(index, number)] = (segment, packed)
                out.append(packed)
        out.append(_deflate(tail))
        self.deflated = kept
        return b"".join(out)


def _next_expiry(snapshot: Snapshot, now: float) -> float:
    """When the next account's values go stale (then the exposition changes)."""
    deadlines = [
        s.last_success + s.max_staleness
        for s in snapshot.accounts
        if s.readings is not None and s.last_success is not None and not s.is_stale(now)
    ]
    return min(deadlines, default=float("inf"))


class MetricsRenderer:
    """The /metrics bytes: built in the background (`start`) or on call (`render`).

    Both keep one `FormatCache` per format, so either way an account is encoded
    again only when its state or staleness changed. At most len(FORMATS) formats
    are kept whatever the Accept headers. The process and runtime metrics are cheap
    and always current, so they are rendered on every scrape and appended.
    """

    def __init__(
        self, *, process_metrics: bool = True, min_interval: float = MIN_REBUILD_SECONDS
    ) -> None:
        self._runtime_registry = CollectorRegistry(auto_describe=False)
        if process_metrics:
            ProcessCollector(registry=self._runtime_registry)
            PlatformCollector(registry=self._runtime_registry)
            GCCollector(registry=self._runtime_registry)
        self._min_interval = min_interval
        self._build_lock = threading.Lock()  # one builder of the FormatCaches at a time
        self._caches: dict[Format, FormatCache] = {}
        # render(): the snapshot key and what was built for it, per format.
        self._cache_key: tuple[object, ...] | None = None
        self._cache: dict[Format, Built] = {}
        self.renders = 0  # format builds so far (tests, benchmarks)
        # start(): what the thread publishes, and which formats scrapers asked for.
        self._cond = threading.Condition()
        self._published: dict[Format, Built] = {}
        self._wanted: dict[Format, float] = {}  # format -> last asked (monotonic)
        self._wanted_gzip: dict[Format, float] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.last_build_seconds = 0.0  # the last background rebuild, all formats
        # The generation published last, and when its first fresh values expire.
        self._last_generation = -1
        self._last_expiry = float("inf")
        self._published_at = 0.0  # monotonic time of the last publication

    @property
    def cached_formats(self) -> frozenset[Format]:
        """The formats a rendering is kept of (for tests and benchmarks)."""
        with self._cond:
            return frozenset(self._cache) | frozenset(self._published)

    def _format_cache(self, fmt: Format) -> FormatCache:
        cache = self._caches.get(fmt)
        if cache is None:
            cache = self._caches[fmt] = FormatCache(Encoder(fmt))
        return cache

    def _runtime(self, fmt: Format) -> bytes:
        return reference_encoder(fmt)(self._runtime_registry)

    def _answer(self, fmt: Format, built: Built, gzipped: bool) -> Rendered:
        runtime = self._runtime(fmt)
        if gzipped:
            return Rendered(gzip_answer(built, runtime), fmt.content_type, "gzip")
        return Rendered(built.body + runtime, fmt.content_type, None)

    # --- on call ----------------------------------------------------------------------

    def render(
        self,
        snapshot: Snapshot,
        now: float,
        accept: str | None = None,
        accept_encoding: str | None = None,
    ) -> Rendered:
        """/metrics for `snapshot` at `now`, built on this call if not kept already.

        For callers without the thread (tests, tools); a scrape uses `published`.
        """
        fmt, _ = negotiate(accept)
        gzipped = bool(accept_encoding) and accepts_gzip(accept_encoding or "")
        expired = tuple(
            s.key for s in snapshot.accounts if s.readings is not None and s.is_stale(now)
        )
        snapshot_key = (snapshot.generation, expired)
        with self._build_lock:
            if snapshot_key != self._cache_key:
                self._cache_key = snapshot_key
                self._cache = {}
            built = self._cache.get(fmt)
            if built is None or (gzipped and built.deflated is None):
                built = self._format_cache(fmt).build(snapshot, now, deflate=gzipped)
                self._cache[fmt] = built
                self.renders += 1
        return self._answer(fmt, built, gzipped)

    # --- in the background --------------------------------------------------------------

    def start(self, source: Callable[[], Snapshot], clock: Callable[[], float]) -> None:
        """Build the text format now, then keep every asked-for format current."""
        now = time.monotonic()
        self._wanted[TEXT_0_0_4] = now
        self._rebuild(source(), clock())
        self._thread = threading.Thread(
            target=self._run, args=(source, clock), name="metrics-renderer", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def published(
        self, accept: str | None, accept_encoding: str | None, generation: int | None = None
    ) -> Rendered | None:
        """The latest published bytes in the negotiated format; None without a thread.

        Never renders the quota families. It waits for the thread only (which is
        woken at once) when the format was never asked for, or when `generation`
        (the store's, as the request found it) is not published yet and the thread
        has published nothing for longer than it takes to coalesce and build: a
        change after a quiet spell is in the very next answer, while under a stream
        of changes every scrape takes the latest bytes without waiting.
        """
        if self._thread is None:
            return None
        fmt, _ = negotiate(accept)
        gzipped = bool(accept_encoding) and accepts_gzip(accept_encoding or "")
        now = time.monotonic()
        with self._cond:
            self._wanted[fmt] = now
            if gzipped:
                self._wanted_gzip[fmt] = now
            built = self._published.get(fmt)
            quiet = now - self._published_at >= (
                self._coalesce() + 2 * self.last_build_seconds + _TICK_SECONDS
            )
            # A cheap build is always worth waiting for: read-your-writes when small.
            cheap = self.last_build_seconds < _CHEAP_BUILD_SECONDS
            behind = (
                generation is not None and self._last_generation < generation and (quiet or cheap)
            )
            if built is None or (gzipped and built.deflated is None) or behind:
                self._cond.notify_all()
                ready = self._cond.wait_for(
                    lambda: (
                        (
                            _usable(self._published.get(fmt), gzipped)
                            and (generation is None or self._last_generation >= generation)
                        )
                        or self._stopping
                    ),
                    timeout=_FIRST_BUILD_WAIT_SECONDS,
                )
                built = self._published.get(fmt)
                if not ready or built is None:
                    raise RuntimeError("the metrics renderer thread has not built this format")
        return self._answer(fmt, built, gzipped)

    def _coalesce(self) -> float:
        """Seconds between rebuild starts: up to MIN_REBUILD_SECONDS, less when cheap.

        Ten builds' time keeps the thread under ~10 % of a core under a stream of
        changes; a small exposition is rebuilt almost at once.
        """
        return min(self._min_interval, 10 * self.last_build_seconds)

    def _run(self, source: Callable[[], Snapshot], clock: Callable[[], float]) -> None:
        last_start = time.monotonic()
        with self._cond:
            generation, expiry = self._last_generation, self._last_expiry
        while True:
            with self._cond:
                self._cond.wait(timeout=_TICK_SECONDS)
                if self._stopping:
                    return
                published, gzipped = self._published, self._wanted_gzip
                missing = any(not _usable(published.get(f), f in gzipped) for f in self._wanted)
                coalesce = self._coalesce()
            snapshot, now = source(), clock()
            changed = snapshot.generation != generation or now > expiry
            due = time.monotonic() - last_start >= coalesce
            if missing or (changed and due):
                last_start = time.monotonic()
                self._rebuild(snapshot, now)
                generation, expiry = self._last_generation, self._last_expiry

    def _rebuild(self, snapshot: Snapshot, now: float) -> None:
        started = time.perf_counter()
        horizon = time.monotonic() - _DEMAND_SECONDS
        with self._cond:
            for wanted in (self._wanted, self._wanted_gzip):
                for fmt in [f for f, asked in wanted.items() if asked < horizon]:
                    del wanted[fmt]
            formats = dict.fromkeys(self._wanted, False)
            formats.update(dict.fromkeys(self._wanted_gzip, True))
        built: dict[Format, Built] = {}
        with self._build_lock:
            for fmt, deflate in formats.items():
                built[fmt] = self._format_cache(fmt).build(snapshot, now, deflate=deflate)
                self.renders += 1
            for fmt in [f for f in self._caches if f not in formats]:
                del self._caches[fmt]  # nobody asks for it: its fragments go
        with self._cond:
            self._published = built
            self._last_generation = snapshot.generation
            self._last_expiry = _next_expiry(snapshot, now)
            self.last_build_seconds = time.perf_counter() - started
            self._published_at = time.monotonic()
            self._cond.notify_all()


def _go_float(value: float) -> str:
    """prometheus_client's own value formatting (the same function its encoders call)."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def _usable(built: Built | None, gzipped: bool) -> bool:
    return built is not None and (not gzipped or built.deflated is not None)


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
