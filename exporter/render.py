"""How `/metrics` is encoded: format negotiation, pre-rendered bytes, gzip.

What is exported is `exporter.families`; this module turns those families into the
bytes of one answer. A scrape never renders: `MetricsRenderer.start` runs a thread
that keeps the latest complete exposition of each format scrapers ask for (plain and
raw-deflated for gzip) and a scrape sends those bytes plus the small process and
runtime metrics. A rebuild after k accounts changed costs O(k) Python work: the
changed accounts are found by comparing state objects position by position (at C
speed, while the set of accounts is the same), each account's lines of each family
are encoded once per (state object, fresh or not) and kept once, in the family's
bytes (with an array of where each account's lines end), and only the blocks of
_BLOCK accounts whose bytes changed are joined again and recompressed; the rest is
a memory copy of the families that changed and their crc32 (see `FormatCache`). A
scrape's answer references the published bytes (`Rendered.chunks`), never copies
them; tests/unit/test_render_incremental.py counts what a rebuild redoes.

The encoder is this module's own (prometheus_client's costs ~20 us a series and
re-encodes everything); tests/unit/test_render_encoding.py proves it byte-identical to
prometheus_client's encoders on the same families, golden and randomised.
"""

from __future__ import annotations

import math
import struct
import threading
import time
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import accumulate, compress
from operator import is_not, ne
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

from exporter.crc32 import crc32_combine, crc32_shift
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
# `start` builds the text format before any scrape, so the first answer is ready; it
# counts as asked for this long only. Prometheus asks OpenMetrics: kept for the full
# _DEMAND_SECONDS, the text format would cost a second exposition (~40 MB at 10,000
# accounts) and its rebuilds for ten minutes after every start.
_STARTUP_DEMAND_SECONDS: Final = 60.0
# How long a scrape of a format not yet built waits for the renderer thread before
# it builds the bytes itself (only when that thread is stuck or gone).
_FIRST_BUILD_WAIT_SECONDS: Final = 30.0
# Accounts per block: a change joins and recompresses its block of each family whose
# bytes it changed (about 313 blocks a family at 10,000 accounts). Each block starts
# the compressor afresh, so smaller blocks cost gzip size: 16 made a rebuild after
# 30 polls ~25 % cheaper and the gzip answer 27 % larger (1.7 -> 2.2 MB at 10,000).
_BLOCK: Final = 32
_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, no mtime


@dataclass(frozen=True)
class Rendered:
    """One /metrics answer: `chunks` are sent in order, as they are.

    They are the published bytes themselves (per family, see `FormatCache`), not a
    copy: a scrape of a 30 MB exposition allocates the runtime metrics and a tuple.
    """

    chunks: tuple[bytes, ...]
    content_type: str
    content_encoding: str | None

    @property
    def body(self) -> bytes:
        """The answer as one bytes object (a copy: for tests and tools)."""
        return b"".join(self.chunks)


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

    `chunks` are the exposition in order: one per family of ACCOUNT_FAMILIES (its
    header and every account's lines of it), then the tail families. They are the
    `FormatCache`'s own bytes, shared with the next build where a family did not
    change. `deflated` is the same exposition as raw deflate ending in a sync flush
    (one chunk per family too), so a scrape appends the runtime metrics' own deflate
    stream and a trailer (see `gzip_answer`); `crc` is the crc32 of the chunks.
    """

    chunks: tuple[bytes, ...]
    size: int  # total length of chunks
    crc: int | None  # with deflated
    deflated: tuple[bytes, ...] | None

    @property
    def body(self) -> bytes:
        """The exposition as one bytes object (a copy: for tests and tools)."""
        return b"".join(self.chunks)


def _deflate(data: bytes | memoryview) -> bytes:
    """`data` as byte-aligned raw deflate with no back references outside it."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


def gzip_answer(built: Built, runtime: bytes) -> tuple[bytes, ...]:
    """One gzip member of built's chunks + runtime, from the kept deflate blocks.

    The chunks of the answer, in order; built's deflated chunks are referenced,
    not copied.
    """
    assert built.deflated is not None
    assert built.crc is not None
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    last = compressor.compress(runtime) + compressor.flush(zlib.Z_FINISH)
    size = (built.size + len(runtime)) & 0xFFFFFFFF
    trailer = struct.pack("<II", zlib.crc32(runtime, built.crc), size)
    return (_GZIP_HEADER, *built.deflated, last, trailer)


# --- the kept fragments ----------------------------------------------------------------


def _is_fresh(state: AccountState, now: float) -> bool:
    """Whether `state`'s readings are exported at `now`: account_samples depends on
    the state and this alone (see exporter.families.account_samples)."""
    return state.readings is not None and not state.is_stale(now)


def _deadline(state: AccountState) -> float:
    """A time at or before the first `now` at which fresh `state` goes stale.

    is_stale compares `now - last_success` with `max_staleness`; the sum here can
    round the other way, so a few ulps come off: too early only costs a pass.
    """
    assert state.last_success is not None
    deadline = state.last_success + state.max_staleness
    if not math.isfinite(deadline):
        return deadline
    return deadline - 4 * math.ulp(abs(state.last_success) + abs(state.max_staleness))


@dataclass
class _FamilyBody:
    """One family of ACCOUNT_FAMILIES in one format: its bytes, by blocks of accounts.

    Each account's lines are kept once, in `data`: `ends` says where each ends, so a
    rebuild compares re-encoded lines with their slice of `data` and rejoins a block
    from slices of the old bytes plus the lines that changed. Offsets are relative
    to the account's block so that a change rewrites the offsets of its block only;
    they are 4-byte machine integers in one array (40 KB a family at 10,000
    accounts), not an int object per account.
    """

    header: bytes
    data: bytes  # header, then each block: what a scrape sends
    # bounds[b] .. bounds[b + 1] is block b in data (bounds[0] is len(header)).
    bounds: array[int]
    # ends[i]: where account i's lines end, from the start of its block; they start
    # where the previous account's end, or at 0 for the first of a block.
    ends: array[int]
    crc: int | None = None  # zlib.crc32(data), when asked for
    crc_shift: int | None = None  # crc32_shift(len(data)), with crc
    header_deflated: bytes | None = None
    blocks_deflated: list[bytes] | None = None  # per block; None: none kept
    undeflated: set[int] = field(default_factory=set)  # blocks changed since deflated
    deflated: bytes | None = None  # header_deflated + blocks_deflated, joined

    @property
    def blocks(self) -> int:
        return len(self.bounds) - 1

    def block(self, number: int) -> memoryview:
        return memoryview(self.data)[self.bounds[number] : self.bounds[number + 1]]

    def span(self, index: int) -> tuple[int, int]:
        """Where account `index`'s lines of this family are in `data`."""
        base = self.bounds[index // _BLOCK]
        start = base + self.ends[index - 1] if index % _BLOCK else base
        return start, base + self.ends[index]

    def lines(self, index: int) -> memoryview:
        """Account `index`'s lines of this family: a view of `data`, not a copy."""
        start, end = self.span(index)
        return memoryview(self.data)[start:end]

    def holds(self, index: int, lines: bytes) -> bool:
        """Whether account `index`'s lines of this family are `lines` (no copy)."""
        start, end = self.span(index)
        return end - start == len(lines) and self.data.startswith(lines, start)


def _bounds(start: int, ends: array[int]) -> array[int]:
    """Block bounds in the family bytes from the accounts' ends (O(blocks), C speed
    but for the sum)."""
    lengths = ends[_BLOCK - 1 :: _BLOCK]
    if len(ends) % _BLOCK:
        lengths.append(ends[-1])
    return array("q", accumulate(lengths, initial=start))


@dataclass
class FormatCache:
    """The kept bytes of one format; used by one thread at a time.

    Per family its bytes, by blocks of _BLOCK accounts (by position in the
    snapshot), raw-deflated per block, and where each account's lines are in them.
    While the store's account layout stays the same object (no reload changed the
    set), a build finds the accounts that changed by comparing state objects
    position by position at C speed, encodes those, and rejoins and recompresses
    only the blocks whose bytes changed: O(changed) Python work, plus memcpy of the
    families that changed and their crc32. Values expiring are found without a walk
    of every account until `now` reaches `expiry`, the earliest time any kept
    account may go stale. Otherwise (another set of accounts, another HELP text, a
    snapshot without a layout) a full pass, reusing the lines of accounts whose
    state object is the same.
    """

    encoder: Encoder
    encoded: int = 0  # accounts encoded so far (tests, benchmarks)
    joined: int = 0  # blocks joined so far
    deflated_blocks: int = 0  # blocks compressed so far
    full_builds: int = 0  # builds that took the full pass
    stale_passes: int = 0  # builds that recomputed every account's staleness
    # At or before the first time a kept account's values go stale (inf: never).
    expiry: float = math.inf
    _layout: tuple[tuple[str, str], ...] | None = None
    _cached: str | None = None  # the HELP's polling sentence the headers were made with
    _states: tuple[AccountState, ...] = ()
    _freshness: list[bool] = field(default_factory=list)
    _families: list[_FamilyBody] = field(default_factory=list)
    _now: float = -math.inf  # of the last build

    def build(self, snapshot: Snapshot, now: float, *, deflate: bool) -> Built:
        cached = cached_sentence(snapshot.default_interval)
        layout = snapshot.layout
        same = (
            layout is not None
            and cached == self._cached
            and len(snapshot.accounts) == len(self._states)
            and (layout is self._layout or layout == self._layout)
        )
        if same:
            self._layout = layout  # equal after a reload: compare by identity next time
            self._update(snapshot.accounts, now)
        else:
            self._full(snapshot, now, cached)
        self._now = now

        encoder = self.encoder
        tail = b"".join(
            encoder.header(family, cached) + encoder.lines(samples)
            for family, samples in tail_families(snapshot)
        )
        chunks = (*(family.data for family in self._families), tail)
        size = sum(map(len, chunks))
        if not deflate:
            return Built(chunks, size, None, None)
        crc = 0
        deflated: list[bytes] = []
        for family in self._families:
            deflated.append(self._deflated(family))
            if family.crc is None or family.crc_shift is None:
                family.crc = zlib.crc32(family.data)
                family.crc_shift = crc32_shift(len(family.data))
            crc = crc32_combine(crc, family.crc, len(family.data), family.crc_shift)
        deflated.append(_deflate(tail))
        crc = crc32_combine(crc, zlib.crc32(tail), len(tail))
        return Built(chunks, size, crc, tuple(deflated))

    def _update(self, accounts: tuple[AccountState, ...], now: float) -> None:
        """Re-encode the accounts whose state or freshness changed; rejoin their blocks."""
        count = len(accounts)
        changed: Iterable[int] = compress(range(count), map(is_not, self._states, accounts))
        if now >= self.expiry or now < self._now:
            # Some kept values may have gone stale (or, the clock going back, fresh
            # again): one pass over every account finds which, and the next expiry.
            self.stale_passes += 1
            fresh = [_is_fresh(state, now) for state in accounts]
            flipped = compress(range(count), map(ne, self._freshness, fresh))
            changed = sorted({*changed, *flipped})
            self._freshness = fresh
            self.expiry = min(map(_deadline, compress(accounts, fresh)), default=math.inf)
        else:
            changed = list(changed)
            fresh = self._freshness
            expiry = self.expiry
            for index in changed:
                state = accounts[index]
                fresh[index] = is_fresh = _is_fresh(state, now)
                if is_fresh:
                    expiry = min(expiry, _deadline(state))
            self.expiry = expiry  # may be early now (a kept value was refreshed): fine
        self._states = accounts
        families = self._families
        # Per family, the accounts whose lines changed and their new lines.
        pending: list[dict[int, bytes]] = [{} for _ in families]
        lines = self.encoder.lines
        for index in changed:
            self.encoded += 1
            for number, samples in enumerate(account_samples(accounts[index], now)):
                fragment = lines(samples)
                # A poll changes a few families of an account: the others keep their
                # bytes, so their blocks are not joined or compressed again.
                if not families[number].holds(index, fragment):
                    pending[number][index] = fragment
        for family, fragments in zip(families, pending, strict=True):
            if fragments:
                self._rejoin(family, fragments)

    def _rejoin(self, family: _FamilyBody, fragments: dict[int, bytes]) -> None:
        """family's bytes with the lines in `fragments` replaced, the rest copied.

        The new bytes are joined from views of the old ones between the changed
        accounts and their new lines; then the ends in each changed block after
        the first changed account move by what the lines before them grew.
        """
        old = memoryview(family.data)
        ends = family.ends
        count = len(ends)
        changed = sorted(fragments)
        spans = [family.span(index) for index in changed]  # before any end moves
        parts: list[bytes | memoryview] = []
        position = 0
        for (start, end), index in zip(spans, changed, strict=True):
            parts.append(old[position:start])
            parts.append(fragments[index])
            position = end
        parts.append(old[position:])
        family.data = b"".join(parts)
        del old, parts
        shift, block, last = 0, -1, 0
        following = iter([*changed[1:], count])
        for (start, end), index in zip(spans, changed, strict=True):
            if index // _BLOCK != block:
                block = index // _BLOCK
                last = min(block * _BLOCK + _BLOCK, count)
                shift = 0
                family.undeflated.add(block)
                self.joined += 1
            shift += len(fragments[index]) - (end - start)
            for moved in range(index, min(next(following), last)):
                ends[moved] += shift
        family.bounds = _bounds(len(family.header), ends)
        family.crc = family.crc_shift = None
        family.deflated = None

    def _full(self, snapshot: Snapshot, now: float, cached: str) -> None:
        """Every block from scratch; the lines of unchanged state objects kept.

        Lines are joined a block at a time, so no more than a block's lines of each
        family are separate objects at once.
        """
        self.full_builds += 1
        self.stale_passes += 1
        accounts = snapshot.accounts
        count = len(accounts)
        previous = {state.key: index for index, state in enumerate(self._states)}
        old_states, old_fresh, old_families = self._states, self._freshness, self._families
        fresh = [_is_fresh(state, now) for state in accounts]
        lines = self.encoder.lines
        numbers = range(len(ACCOUNT_FAMILIES))
        # Each family's bytes grow in one buffer, not as blocks joined at the end:
        # 35 MB of 11 KB blocks freed after the join stayed in the allocator's free
        # lists (the process's RSS), where a buffer this large is mmapped and goes
        # back to the system when freed.
        header_lines = [self.encoder.header(family, cached) for family in ACCOUNT_FAMILIES]
        buffers = [bytearray(header) for header in header_lines]
        ends = [array("I") for _ in numbers]  # a block's bytes stay far below 4 GiB
        # Per old family: a view of its bytes and where its accounts are.
        old = [(memoryview(f.data), f.bounds, f.ends) for f in old_families]
        rows: list[list[bytes | memoryview]] = []  # of the block being joined
        for position, (state, is_fresh) in enumerate(zip(accounts, fresh, strict=True)):
            index = previous.get(state.key)
            if index is not None and old_states[index] is state and old_fresh[index] == is_fresh:
                # _FamilyBody.lines inlined: a reload passes here 190,000 times at
                # 10,000 accounts.
                block, at = divmod(index, _BLOCK)
                row: list[bytes | memoryview] = []
                for view, bounds, kept in old:
                    base = bounds[block]
                    row.append(view[base + kept[index - 1] if at else base : base + kept[index]])
                rows.append(row)
            else:
                rows.append([lines(samples) for samples in account_samples(state, now)])
                self.encoded += 1
            if position % _BLOCK == _BLOCK - 1 or position == count - 1:
                for number in numbers:
                    column = [row[number] for row in rows]
                    buffers[number] += b"".join(column)
                    ends[number].extend(accumulate(map(len, column)))
                rows.clear()
                self.joined += len(numbers)
        # The old bytes go before the new ones are copied out of their buffers.
        column, old, old_families = [], [], []
        self._families = []
        for number, header in enumerate(header_lines):
            data, buffers[number] = bytes(buffers[number]), bytearray()  # one copy at a time
            self._families.append(
                _FamilyBody(
                    header=header,
                    data=data,
                    bounds=_bounds(len(header), ends[number]),
                    ends=ends[number],
                )
            )
        self._states, self._freshness = accounts, fresh
        self._layout, self._cached = snapshot.layout, cached
        self.expiry = min(map(_deadline, compress(accounts, fresh)), default=math.inf)

    def _deflated(self, family: _FamilyBody) -> bytes:
        """family's bytes as raw deflate, compressing only the blocks that changed."""
        if family.deflated is not None:
            return family.deflated
        if family.header_deflated is None:
            family.header_deflated = _deflate(family.header)
        if family.blocks_deflated is None:
            family.undeflated = set(range(family.blocks))
            family.blocks_deflated = [b""] * family.blocks
        packed = family.blocks_deflated
        for number in family.undeflated:
            packed[number] = _deflate(family.block(number))
            self.deflated_blocks += 1
        family.undeflated = set()
        family.deflated = b"".join([family.header_deflated, *packed])
        return family.deflated


class MetricsRenderer:
    """The /metrics bytes: built in the background (`start`) or on call (`render`).

    Both keep one `FormatCache` per format, so either way an account is encoded
    again only when its state or freshness changed, and a rebuild costs what
    changed. At most len(FORMATS) formats are kept whatever the Accept headers. The
    process and runtime metrics are cheap and always current, so they are rendered
    on every scrape and appended.
    """

    def __init__(
        self,
        *,
        process_metrics: bool = True,
        min_interval: float = MIN_REBUILD_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # The clock demand and coalescing are measured by (a test's own, or the
        # system's); `clock`, given to `start`, is the one values go stale by.
        self._monotonic = monotonic
        self._runtime_registry = CollectorRegistry(auto_describe=False)
        if process_metrics:
            ProcessCollector(registry=self._runtime_registry)
            PlatformCollector(registry=self._runtime_registry)
            GCCollector(registry=self._runtime_registry)
        self._min_interval = min_interval
        self._build_lock = threading.Lock()  # one builder of the FormatCaches at a time
        self._caches: dict[Format, FormatCache] = {}
        # render(): per format, what was built for the generation `_cache_generation`,
        # at what time, and until when it holds (the format cache's expiry).
        self._cache_generation: int | None = None
        self._cache: dict[Format, tuple[Built, float, float]] = {}
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

    def wait_published(self, generation: int, timeout: float) -> bool:
        """Wait until the background bytes are built from `generation` or later
        (without a thread: at once). False when `timeout` passed first."""
        with self._cond:
            if self._thread is None:
                return True
            self._cond.notify_all()
            return self._cond.wait_for(
                lambda: self._last_generation >= generation or self._stopping, timeout=timeout
            )

    @property
    def published_generation(self) -> int:
        """The store generation the background bytes were last built from (-1: none)."""
        with self._cond:
            return self._last_generation

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
        # The published chunks themselves, never a copy of the exposition.
        runtime = self._runtime(fmt)
        if gzipped:
            return Rendered(gzip_answer(built, runtime), fmt.content_type, "gzip")
        chunks = (*built.chunks, runtime) if runtime else built.chunks
        return Rendered(chunks, fmt.content_type, None)

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
        with self._build_lock:
            if snapshot.generation != self._cache_generation:
                self._cache_generation = snapshot.generation
                self._cache = {}
            kept = self._cache.get(fmt)
            # Built for this generation, and no value went stale since (nor, the
            # clock going back, fresh again): the same bytes, without a walk.
            if kept is not None and kept[1] <= now < kept[2] and _usable(kept[0], gzipped):
                built = kept[0]
            else:
                cache = self._format_cache(fmt)
                built = cache.build(snapshot, now, deflate=gzipped)
                self._cache[fmt] = (built, now, cache.expiry)
                self.renders += 1
        return self._answer(fmt, built, gzipped)

    # --- in the background --------------------------------------------------------------

    def start(self, source: Callable[[], Snapshot], clock: Callable[[], float]) -> None:
        """Build the text format now, then keep every asked-for format current.

        The text format counts as asked for _STARTUP_DEMAND_SECONDS, unless a
        scrape asks for it.
        """
        now = self._monotonic()
        self._wanted[TEXT_0_0_4] = now - _DEMAND_SECONDS + _STARTUP_DEMAND_SECONDS
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
        now = self._monotonic()
        with self._cond:
            self._wanted[fmt] = now
            if gzipped:
                self._wanted_gzip[fmt] = now
            built = self._published.get(fmt)
            quiet = now - self._published_at >= (
                self._coalesce() + 2 * self.last_build_seconds + _TICK_SECONDS
            )
            # Only after a quiet spell: under a stream of changes the next build is up to
            # a coalescing interval away (10 builds), and waiting for it, however cheap
            # the build, made the scrape as slow as that interval (p99 16x the
            # static-bytes server at 3,000 accounts with polls landing).
            behind = generation is not None and self._last_generation < generation and quiet
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
        last_start = self._monotonic()
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
            due = self._monotonic() - last_start >= coalesce
            if missing or (changed and due):
                last_start = self._monotonic()
                self._rebuild(snapshot, now)
                generation, expiry = self._last_generation, self._last_expiry

    def _rebuild(self, snapshot: Snapshot, now: float) -> None:
        started = time.perf_counter()
        horizon = self._monotonic() - _DEMAND_SECONDS
        with self._cond:
            for wanted in (self._wanted, self._wanted_gzip):
                for fmt in [f for f, asked in wanted.items() if asked < horizon]:
                    del wanted[fmt]
            formats = dict.fromkeys(self._wanted, False)
            formats.update(dict.fromkeys(self._wanted_gzip, True))
        built: dict[Format, Built] = {}
        expiry = math.inf
        with self._build_lock:
            for fmt, deflate in formats.items():
                cache = self._format_cache(fmt)
                built[fmt] = cache.build(snapshot, now, deflate=deflate)
                expiry = min(expiry, cache.expiry)
                self.renders += 1
            for fmt in [f for f in self._caches if f not in formats]:
                del self._caches[fmt]  # nobody asks for it: its fragments go
        with self._cond:
            self._published = built
            self._last_generation = snapshot.generation
            # When the first kept value may go stale: then the exposition changes.
            self._last_expiry = expiry
            self.last_build_seconds = time.perf_counter() - started
            self._published_at = self._monotonic()
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
