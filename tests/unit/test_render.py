"""exporter.render: format negotiation, the bounded render cache, gzip, and one
hostile vendor never breaking an answer."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from exporter.model import PollError
from exporter.providers import PROVIDERS
from exporter.render import FORMATS, MetricsRenderer, accepts_gzip
from exporter.state import StateStore
from exporter.statuspage import landing_page
from tests.exposition import samples
from tests.unit.providers.fixtures import edited, recorded
from tests.unit.test_families import NOW, golden_store, good, parsed, render, value


def test_unchanged_snapshot_is_not_rendered_again() -> None:
    store = golden_store()
    renderer = MetricsRenderer(process_metrics=False)
    first = renderer.render(store.snapshot(), NOW).body
    for _ in range(5):
        assert renderer.render(store.snapshot(), NOW).body == first
    assert renderer.renders == 1
    store.update(("pictory", "marketing"), lambda s: replace(s, polls_total=13))
    assert renderer.render(store.snapshot(), NOW).body != first
    assert renderer.renders == 2


def test_values_expiring_invalidate_the_cache_without_a_new_poll() -> None:
    store = golden_store()
    renderer = MetricsRenderer(process_metrics=False)
    before = renderer.render(store.snapshot(), NOW).body.decode()
    assert (
        value(
            before, "saas_quota_used", provider="pictory", account="marketing", meter="ai_credits"
        )
        == 690
    )
    # Every account's last success is now older than max_staleness.
    after = renderer.render(store.snapshot(), NOW + 900).body.decode()
    assert (
        value(after, "saas_quota_used", provider="pictory", account="marketing", meter="ai_credits")
        is None
    )


def test_openmetrics_and_gzip_are_negotiated() -> None:
    import gzip

    renderer = MetricsRenderer()
    snapshot = golden_store().snapshot()
    om = renderer.render(snapshot, NOW, "application/openmetrics-text; version=1.0.0", None)
    assert om.content_type.startswith("application/openmetrics-text")
    text = om.body.decode()
    assert text.endswith("# EOF\n")
    assert text.count("# EOF") == 1
    assert "process_" in text or "python_info" in text
    zipped = renderer.render(snapshot, NOW, None, "gzip, deflate")
    assert zipped.content_encoding == "gzip"
    assert b"saas_quota_up" in gzip.decompress(zipped.body)


def test_each_format_stays_cached_for_the_same_snapshot() -> None:
    renderer = MetricsRenderer(process_metrics=False)
    snapshot = golden_store().snapshot()
    openmetrics = "application/openmetrics-text; version=1.0.0"
    for _ in range(3):
        renderer.render(snapshot, NOW, openmetrics, None)
        renderer.render(snapshot, NOW, "text/plain", None)
    assert renderer.renders == 2, "one render per format, not one per alternation"


def distinct_accept_headers(count: int) -> list[str]:
    """`count` Accept headers, no two alike, that a scraper could send."""
    shapes = (
        "application/openmetrics-text; version=1.0.0; x={n}",
        "application/openmetrics-text; version=1.0.{n}",
        "application/openmetrics-text; version=1.{n}.0; escaping=allow-utf-8",
        "application/openmetrics-text;version=1.0.0.{n};escaping=dots;q=0.5,*/*;q=0.1",
        "text/plain; version=1.0.{n}; escaping=values",
        "text/plain; version=0.0.4; q=0.{n}",
        "text/plain;version=1.{n}.0",
    )
    return [shapes[n % len(shapes)].format(n=n) for n in range(count)]


def test_distinct_accept_headers_share_one_entry_per_negotiated_format() -> None:
    # Keyed by the Content-Type string, every version a scraper names got its own
    # render and its own cached copy of the whole quota exposition.
    renderer = MetricsRenderer(process_metrics=False)
    snapshot = golden_store().snapshot()
    types = set()
    for accept in distinct_accept_headers(1000):
        types.add(renderer.render(snapshot, NOW, accept, None).content_type)
    assert renderer.renders <= len(FORMATS), "at most one render per format per snapshot"
    assert len(types) <= len(FORMATS)
    assert renderer.cached_formats <= FORMATS
    assert renderer.renders == len(renderer.cached_formats)
    # The Content-Type is one of ours, never the client's version echoed back.
    assert types <= {f.content_type for f in FORMATS}
    assert not any("1.0.7" in t or "x=" in t for t in types)


def test_an_accept_version_that_is_no_number_gets_the_text_format() -> None:
    # prometheus_client compares "abc" with 1 and raised TypeError: no answer at all.
    renderer = MetricsRenderer(process_metrics=False)
    snapshot = golden_store().snapshot()
    for accept in ("application/openmetrics-text; version=abc", "text/plain; version=1.x"):
        rendered = renderer.render(snapshot, NOW, accept, None)
        assert rendered.content_type == "text/plain; version=0.0.4; charset=utf-8"
        assert b"saas_quota_up" in rendered.body


@pytest.mark.parametrize(
    ("header", "gzip"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.8, *;q=0.1", True),
        ("gzip;q=0", False),
        ("gzip;q=0.000, identity", False),
        ("identity", False),
        ("deflate, br", False),
        ("*", True),
        ("*;q=0", False),
        # Named on its own, gzip's own weight wins over the wildcard's.
        ("gzip;q=0, *", False),
        ("*;q=0, gzip", True),
        ("gzip;q=nonsense", False),
        ("", False),
        # A coding that merely contains the letters is not gzip.
        ("x-gzipped", False),
    ],
)
def test_accepts_gzip_follows_the_header_weights(header: str, gzip: bool) -> None:
    assert accepts_gzip(header) is gzip


# --- one vendor never breaks everyone ------------------------------------------------

# What json.loads hands an adapter from a hostile or broken vendor: lone surrogates
# (UTF-8 cannot encode them), controls, NULs, a megabyte of text.
HOSTILE = "Pro \udfff\ud800\x00\x1b[2J\r\n" + "\u202e" + "x" * 1_000_000


def hostile_store() -> StateStore:
    """The golden accounts plus accounts whose vendors sent HOSTILE everywhere."""
    store = golden_store()
    golden, reload = store.snapshot().accounts, store.snapshot().reload
    vertaaux = PROVIDERS["vertaaux"].parse(
        200,
        recorded("vertaaux", "quota_pro").headers,
        edited("vertaaux", "quota_pro", {("plan",): HOSTILE[:150]}),
    )
    vidnavigator = PROVIDERS["vidnavigator"].parse(
        200,
        {},
        edited(
            "vidnavigator",
            "usage_v3_credits",
            {
                ("data", "subscription", "plan_name"): HOSTILE,
                ("data", "usage", "transcription_hour", "used"): 1e308,
            },
        ),
    )
    piloterr = PROVIDERS["piloterr"].parse(
        200, {}, edited("piloterr", "usage", {("api_key", "alias"): HOSTILE})
    )
    with pytest.raises(PollError) as caught:
        PROVIDERS["pictory"].parse(500, {}, json.dumps({"message": HOSTILE}).encode())
    failing = replace(
        good("pictory", "hostile_error", parsed("pictory", "quota")),
        up=False,
        last_error=caught.value.message,
    ).with_error(caught.value.reason)
    store.set_accounts(
        [
            *golden,
            good("vertaaux", "hostile", vertaaux),
            good("vidnavigator", "hostile", vidnavigator),
            good("piloterr", "hostile", piloterr),
            failing,
        ]
    )
    store.set_reload(reload)
    return store


def test_hostile_vendor_text_renders_in_every_format_and_costs_no_other_account() -> None:
    snapshot = hostile_store().snapshot()
    page = landing_page(snapshot, NOW).encode("utf-8")  # strict, as web.py encodes it
    renderer = MetricsRenderer(process_metrics=False)
    text = renderer.render(snapshot, NOW).body
    openmetrics = renderer.render(
        snapshot, NOW, "application/openmetrics-text; version=1.0.0", None
    ).body

    # Every series of every other account is there, unchanged.
    exported = samples(text.decode("utf-8"))
    golden = samples(render(golden_store()))
    assert {k: v for k, v in exported.items() if k in golden} == golden
    om_names = {
        s.name
        for family in openmetrics_families(openmetrics.decode("utf-8"))
        for s in family.samples
    }
    assert {name for name, _ in golden} <= om_names

    # The hostile accounts are exported too, with safe, bounded label values.
    for provider in ("vertaaux", "vidnavigator", "piloterr"):
        assert value(text.decode(), "saas_quota_up", provider=provider, account="hostile") == 1
    info = [
        dict(labels)
        for (name, labels), _ in exported.items()
        if name == "saas_quota_account_info" and ("account", "hostile") in labels
    ]
    assert len(info) == 3
    for labels in info:
        for label_value in labels.values():
            assert "\x00" not in label_value
            assert "\ud800" not in label_value
            assert len(label_value) <= 128 + len("...")
    # The overflowing meter is the only one of its account that is missing.
    ids = {"provider": "vidnavigator", "account": "hostile"}
    assert value(text.decode(), "saas_quota_used", meter="transcription_seconds", **ids) is None
    assert value(text.decode(), "saas_quota_used", meter="standard_requests", **ids) == 1250
    # The page shows the failing account's error as one bounded line.
    assert b"hostile_error" in page
    # One row per meter and the stylesheet: bounded by the meters, not the vendor text.
    assert len(page) < 40_000


def openmetrics_families(text: str) -> list[Any]:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om

    return list(om(text))  # type: ignore[no-untyped-call]


def test_the_renderer_renders_the_snapshot_it_is_handed_not_the_stores_latest() -> None:
    # web.py takes one snapshot per request; a poll landing meanwhile must not
    # show up in that answer.
    store = golden_store()
    taken = store.snapshot()
    store.set_accounts([])
    text = MetricsRenderer(process_metrics=False).render(taken, NOW).body.decode()
    assert value(text, "saas_quota_up", provider="pictory", account="marketing") == 1
    assert text == render(golden_store())
