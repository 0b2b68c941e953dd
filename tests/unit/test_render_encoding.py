"""exporter.render's own encoder and pre-rendered bytes, held to prometheus_client.

The encoder exists for speed (prometheus_client re-encodes every series on every
change); these tests prove it writes the same bytes as prometheus_client's encoders
for the same families, in every format, on the golden snapshot and on randomised
ones (odd label text, every kind of float), and that the gzip form assembled from
kept blocks decompresses to exactly the plain bytes.
"""

from __future__ import annotations

import gzip
import time
import zlib
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.core import Metric

from exporter.families import ACCOUNT_FAMILIES, FRESHNESS, families
from exporter.model import FieldError, MeterReading, Readings, Reason
from exporter.render import (
    FORMATS,
    TEXT_0_0_4,
    Encoder,
    Format,
    MetricsRenderer,
    _Families,
    reference_encoder,
)
from exporter.state import AccountState, ReloadStatus, Snapshot, StateStore
from tests.support.examples import examples
from tests.unit.test_families import NOW, golden_store, good, parsed

ORDERED_FORMATS = sorted(FORMATS, key=lambda f: (f.name, f.version, f.escaping or ""))


def accept_for(fmt: Format) -> str | None:
    """An Accept header that negotiates `fmt`."""
    if fmt == TEXT_0_0_4:
        return None
    media = "application/openmetrics-text" if fmt.name == "openmetrics" else "text/plain"
    return f"{media}; version={fmt.version}; escaping={fmt.escaping}"


def reference(snapshot: Snapshot, now: float, fmt: Format) -> bytes:
    """What prometheus_client's own encoder writes for the same families."""
    return reference_encoder(fmt)(_Families(families(snapshot, now)))


def assert_identical(snapshot: Snapshot, now: float) -> None:
    renderer = MetricsRenderer(process_metrics=False)
    for fmt in ORDERED_FORMATS:
        ours = renderer.render(snapshot, now, accept_for(fmt)).body
        theirs = reference(snapshot, now, fmt)
        assert ours == theirs, fmt


def test_every_format_of_the_golden_snapshot_is_byte_identical() -> None:
    assert_identical(golden_store().snapshot(), NOW)
    # Later, when some values have gone stale, too.
    assert_identical(golden_store().snapshot(), NOW + 900)


# Label text a vendor or a config could bring: quotes, backslashes, newlines,
# escapes that look done already, any unicode (no lone surrogates: strict UTF-8).
LABEL_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(['"', "\\", "\n", "\r", "\t", "{", "}", ",", "=", " ", "é", "😀"]),
        st.characters(exclude_categories=["Cs"]),
    ),
    max_size=12,
)
ANY_FLOAT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e300, -1e300, 5e-324, 1e-7, 1234567.0, 1e6, 1e21]),
    st.integers(min_value=-(2**53), max_value=2**53).map(float),
)
FIGURE = st.one_of(
    st.none(),
    st.floats(min_value=0, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=2**60).map(float),
)
LABEL_NAME = st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_]{0,8}\Z")


@st.composite
def meter(draw: st.DrawFn) -> MeterReading | None:
    unlimited = draw(st.booleans())
    try:
        return MeterReading(
            meter=draw(LABEL_TEXT),
            unit=draw(LABEL_TEXT),
            used=draw(FIGURE),
            limit=None if unlimited else draw(FIGURE),
            remaining=None if unlimited else draw(FIGURE),
            unlimited=unlimited,
            reset_timestamp=draw(st.one_of(st.none(), st.floats(-1e12, 1e12))),
            period_start_timestamp=draw(st.one_of(st.none(), st.just(-0.0), st.floats(0, 1e10))),
        )
    except (FieldError, ValueError):
        return None


@st.composite
def account(draw: st.DrawFn, index: int) -> AccountState:
    meters = {m.meter: m for m in draw(st.lists(meter(), max_size=4)) if m is not None}
    readings = Readings(
        meters=tuple(meters.values()),
        account_info=tuple(draw(st.lists(st.tuples(LABEL_NAME, LABEL_TEXT), max_size=3))),
        api_key_expiry_timestamp=draw(st.one_of(st.none(), st.floats(0, 4e9))),
        api_key_active=draw(st.one_of(st.none(), st.booleans())),
        rate_limits=tuple(draw(st.lists(st.tuples(LABEL_TEXT, FIGURE.filter(bool)), max_size=2))),
        key_caps=tuple(draw(st.lists(st.tuples(LABEL_TEXT, FIGURE.filter(bool)), max_size=2))),
    )
    errors = tuple((r, draw(st.integers(0, 2**40))) for r in Reason)
    return AccountState(
        provider=draw(LABEL_TEXT),
        account=f"{draw(LABEL_TEXT)}-{index}",  # unique keys, as a config has them
        interval=300.0,
        max_staleness=draw(st.sampled_from([900.0, 10.0])),
        up=draw(st.booleans()),
        polled=True,
        readings=draw(st.one_of(st.none(), st.just(readings))),
        last_success=draw(st.one_of(st.none(), st.floats(NOW - 100, NOW))),
        last_poll_duration=draw(st.one_of(st.none(), ANY_FLOAT)),
        polls_total=draw(st.integers(0, 2**62)),
        errors_total=errors,
    )


@st.composite
def snapshot(draw: st.DrawFn) -> Snapshot:
    count = draw(st.integers(0, 5))
    states = [draw(account(i)) for i in range(count)]
    reload = ReloadStatus(
        successful=draw(st.booleans()),
        last_success=draw(st.one_of(st.none(), ANY_FLOAT)),
    )
    return Snapshot(
        generation=draw(st.integers(0, 100)),
        accounts=tuple(sorted(states, key=lambda s: s.key)),
        reload=reload,
        default_interval=draw(st.sampled_from([15.0, 300.0, 3600.0])),
    )


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshot())
def test_random_snapshots_are_byte_identical_in_every_format(snap: Snapshot) -> None:
    assert_identical(snap, NOW)


@settings(max_examples=examples(300), deadline=None)
@given(
    st.sampled_from(ORDERED_FORMATS),
    st.lists(
        st.tuples(
            st.sampled_from([f.name for f in ACCOUNT_FAMILIES]),
            st.dictionaries(LABEL_NAME, LABEL_TEXT, max_size=4),
            ANY_FLOAT,
        ),
        max_size=6,
    ),
)
def test_sample_lines_match_prometheus_client(
    fmt: Format, rows: list[tuple[str, dict[str, str], float]]
) -> None:
    # Straight at the line encoder: any label names, any float (NaN, inf, -0.0...).
    metric = Metric("saas_quota_x", "help", "gauge")
    for name, labels, value in rows:
        metric.add_sample(name, labels, value)
    theirs = reference_encoder(fmt)(_Families([metric]))
    header = Encoder(fmt).header(ACCOUNT_FAMILIES[0], "")
    ours_header = reference_encoder(fmt)(_Families([Metric("saas_quota_x", "help", "gauge")]))
    ours = ours_header.removesuffix(b"# EOF\n") + Encoder(fmt).lines(rows)
    if fmt.name == "openmetrics":
        ours += b"# EOF\n"
    assert ours == theirs
    assert header.startswith(b"# HELP saas_quota_used ") or b"saas__quota" in header


def test_the_help_text_says_how_fresh_the_bytes_are() -> None:
    exported = families(golden_store().snapshot(), NOW)
    for metric in exported:
        if metric.name != "saas_quota_build_info":
            assert FRESHNESS in metric.documentation, metric.name
    assert "1s" in FRESHNESS


# --- work proportional to what changed ----------------------------------------------


def many_accounts(count: int) -> StateStore:
    """`count` accounts cycling through the five vendors' recorded answers."""
    cases = [
        ("pictory", "quota"),
        ("tornado", "usage_key_with_limits"),
        ("piloterr", "usage_expiring_key"),
        ("vidnavigator", "usage_v3_unlimited"),
        ("vertaaux", "quota_pro"),
    ]
    readings = [(p, parsed(p, c)) for p, c in cases]
    store = StateStore()
    store.set_accounts(
        good(p, f"customer-{i:05d}", r)
        for i, (p, r) in ((i, readings[i % 5]) for i in range(count))
    )
    store.set_reload(ReloadStatus(successful=True, last_success=NOW - 600))
    return store


def test_a_change_reencodes_only_the_account_that_changed() -> None:
    store = many_accounts(200)
    renderer = MetricsRenderer(process_metrics=False)
    renderer.render(store.snapshot(), NOW)
    cache = renderer._caches[TEXT_0_0_4]
    assert cache.encoded == 200
    store.update(("pictory", "customer-00005"), lambda s: replace(s, polls_total=99))
    after = renderer.render(store.snapshot(), NOW).body
    assert cache.encoded == 201, "one account changed: one account encoded"
    assert after == reference(store.snapshot(), NOW, TEXT_0_0_4)
    # An account whose values expire is encoded again too (and only it).
    store.update(("pictory", "customer-00010"), lambda s: replace(s, last_success=NOW - 899))
    renderer.render(store.snapshot(), NOW + 2)
    assert cache.encoded == 202
    assert renderer.render(store.snapshot(), NOW + 2).body == reference(
        store.snapshot(), NOW + 2, TEXT_0_0_4
    )


@pytest.mark.parametrize("fmt", ORDERED_FORMATS, ids=str)
def test_gzip_from_kept_blocks_is_one_member_of_exactly_the_plain_bytes(fmt: Format) -> None:
    store = many_accounts(100)
    renderer = MetricsRenderer()  # with the runtime metrics appended per answer
    for step in range(3):
        plain = renderer.render(store.snapshot(), NOW, accept_for(fmt)).body
        zipped = renderer.render(store.snapshot(), NOW, accept_for(fmt), "gzip")
        assert zipped.content_encoding == "gzip"
        unzipped = gzip.decompress(zipped.body)
        # The runtime metrics are read per answer: compare without them.
        quota_end = plain.index(b"# HELP process_") if b"# HELP process_" in plain else None
        assert unzipped[:quota_end] == plain[:quota_end]
        # One member, no trailing bytes: readers that stop at the first member agree.
        single = zlib.decompressobj(wbits=31)
        assert single.decompress(zipped.body) == unzipped
        assert single.eof
        assert not single.unused_data
        store.update(("pictory", f"customer-{step * 5:05d}"), lambda s: replace(s, polls_total=7))


# --- served from the background -----------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def wait_for(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def body(renderer: MetricsRenderer) -> bytes:
    rendered = renderer.published(None, None)
    assert rendered is not None
    return rendered.body


def test_a_scrape_sends_published_bytes_and_never_renders() -> None:
    store, clock = golden_store(), Clock(NOW)
    renderer = MetricsRenderer(process_metrics=False, min_interval=0.2)
    renderer.start(store.snapshot, clock)
    try:
        first = renderer.published(None, None)
        assert first is not None
        assert first.body == reference(store.snapshot(), NOW, TEXT_0_0_4)
        builds = renderer.renders
        for _ in range(50):
            assert renderer.published(None, None) == first
        assert renderer.renders == builds, "scrapes of an unchanged store built nothing"

        # A poll landing reaches the published bytes without any scrape asking.
        store.update(("pictory", "marketing"), lambda s: replace(s, polls_total=4242))
        wait_for(lambda: b"4242.0" in renderer.published(None, None).body)  # type: ignore[union-attr]
        assert renderer.published(None, None).body == reference(  # type: ignore[union-attr]
            store.snapshot(), NOW, TEXT_0_0_4
        )

        # Values expiring change the bytes with no poll at all.
        assert b'account="marketing",meter="ai_credits"' in renderer.published(None, None).body  # type: ignore[union-attr]
        clock.now = NOW + 900
        wait_for(lambda: b'meter="ai_credits"' not in body(renderer))

        # A format nobody asked for yet is built by the thread, then kept current.
        openmetrics = "application/openmetrics-text; version=1.0.0"
        om = renderer.published(openmetrics, "gzip")
        assert om is not None
        assert om.content_encoding == "gzip"
        assert gzip.decompress(om.body) == reference(
            store.snapshot(), clock.now, Format("openmetrics", "1.0.0", "underscores")
        )
        assert renderer.cached_formats <= FORMATS
    finally:
        renderer.stop()


def test_under_a_stream_of_changes_a_scrape_takes_the_latest_bytes_without_waiting() -> None:
    store, monotonic = golden_store(), Clock(1000.0)
    # Coalescing is measured by `monotonic`: frozen, the next rebuild is never due.
    renderer = MetricsRenderer(process_metrics=False, min_interval=0.5, monotonic=monotonic)
    renderer.start(store.snapshot, Clock(NOW))
    try:
        before = body(renderer)
        store.update(("pictory", "marketing"), lambda s: replace(s, polls_total=4242))
        generation = store.snapshot().generation
        # Just published, the store a generation ahead, the build cheap (a few ms): the
        # answer is the bytes already published, at once, not the next rebuild's.
        started = time.monotonic()
        rendered = renderer.published(None, None, generation)
        assert time.monotonic() - started < 5
        assert rendered is not None
        assert rendered.body == before
        # After a quiet spell the scrape waits for the change (read-your-writes).
        monotonic.now = 1010.0
        rendered = renderer.published(None, None, generation)
        assert rendered is not None
        assert b"4242.0" in rendered.body
    finally:
        renderer.stop()


@pytest.mark.parametrize("text_asked", [False, True])
def test_the_start_up_text_build_is_kept_only_a_minute_unless_a_scrape_asks_for_it(
    text_asked: bool,
) -> None:
    openmetrics_format = Format("openmetrics", "1.0.0", "underscores")
    openmetrics = "application/openmetrics-text; version=1.0.0"
    store, monotonic = golden_store(), Clock(1000.0)  # demand is measured by monotonic
    renderer = MetricsRenderer(process_metrics=False, min_interval=0.05, monotonic=monotonic)
    renderer.start(store.snapshot, Clock(NOW))
    try:
        assert renderer.cached_formats == {TEXT_0_0_4}, "built before any scrape"
        assert renderer.published(openmetrics, "gzip") is not None  # Prometheus
        if text_asked:
            assert renderer.published(None, None) is not None  # someone with curl
        # 59 s on, a rebuild (a poll landed) still keeps the start-up build.
        monotonic.now = 1059.0
        store.update(("pictory", "marketing"), lambda s: replace(s, polls_total=4242))
        wait_for(lambda: renderer.published_generation == store.snapshot().generation)
        assert renderer.cached_formats == {TEXT_0_0_4, openmetrics_format}
        # 61 s on, the next rebuild drops it unless a scrape asked for it.
        monotonic.now = 1061.0
        store.update(("pictory", "marketing"), lambda s: replace(s, polls_total=4243))
        wait_for(lambda: renderer.published_generation == store.snapshot().generation)
        kept = {TEXT_0_0_4, openmetrics_format} if text_asked else {openmetrics_format}
        assert renderer.cached_formats == kept
        assert set(renderer._caches) == kept, "its kept bytes go with it"
    finally:
        renderer.stop()
