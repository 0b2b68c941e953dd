"""The exposition: a golden file, promtool, caching and the failure semantics.

The golden file is rendered from fixed states built out of the recorded vendor
fixtures, so it pins every metric name, label, HELP text and value format of the
contract at once. Regenerate it deliberately with UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.collector import FORMATS, MetricsRenderer, QuotaCollector, accepts_gzip
from exporter.model import PollError, Readings, Reason
from exporter.providers import PROVIDERS
from exporter.state import AccountState, ReloadStatus, StateStore
from exporter.web import landing_page
from tests.e2e import require_binary
from tests.exposition import samples
from tests.fakes import up_state
from tests.providers.fixtures import edited, recorded

GOLDEN = Path(__file__).parent / "golden" / "metrics.prom"
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
    ]
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
    renderer = MetricsRenderer(QuotaCollector(store, lambda: NOW), process_metrics=False)
    return renderer.render(None, None).body.decode()


def test_exposition_matches_the_golden_file() -> None:
    text = render(golden_store())
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_promtool_check_metrics_passes_on_the_exposition() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=render(golden_store()).encode(),
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()


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


def test_unchanged_snapshot_is_not_rendered_again() -> None:
    store = golden_store()
    renderer = MetricsRenderer(QuotaCollector(store, lambda: NOW), process_metrics=False)
    first = renderer.render(None, None).body
    for _ in range(5):
        assert renderer.render(None, None).body == first
    assert renderer.renders == 1
    store.update(("pictory", "marketing"), lambda s: replace(s, polls_total=13))
    assert renderer.render(None, None).body != first
    assert renderer.renders == 2


def test_values_expiring_invalidate_the_cache_without_a_new_poll() -> None:
    now = [NOW]
    store = golden_store()
    renderer = MetricsRenderer(QuotaCollector(store, lambda: now[0]), process_metrics=False)
    before = renderer.render(None, None).body.decode()
    assert (
        value(
            before, "saas_quota_used", provider="pictory", account="marketing", meter="ai_credits"
        )
        == 690
    )
    now[0] += 900  # every account's last success is now older than max_staleness
    after = renderer.render(None, None).body.decode()
    assert (
        value(after, "saas_quota_used", provider="pictory", account="marketing", meter="ai_credits")
        is None
    )


def test_openmetrics_and_gzip_are_negotiated() -> None:
    import gzip

    renderer = MetricsRenderer(QuotaCollector(golden_store(), lambda: NOW))
    om = renderer.render("application/openmetrics-text; version=1.0.0", None)
    assert om.content_type.startswith("application/openmetrics-text")
    text = om.body.decode()
    assert text.endswith("# EOF\n")
    assert text.count("# EOF") == 1
    assert "process_" in text or "python_info" in text
    zipped = renderer.render(None, "gzip, deflate")
    assert zipped.content_encoding == "gzip"
    assert b"saas_quota_up" in gzip.decompress(zipped.body)


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


def test_each_format_stays_cached_for_the_same_snapshot() -> None:
    renderer = MetricsRenderer(QuotaCollector(golden_store(), lambda: NOW), process_metrics=False)
    openmetrics = "application/openmetrics-text; version=1.0.0"
    for _ in range(3):
        renderer.render(openmetrics, None)
        renderer.render("text/plain", None)
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
    renderer = MetricsRenderer(QuotaCollector(golden_store(), lambda: NOW), process_metrics=False)
    types = set()
    for accept in distinct_accept_headers(1000):
        types.add(renderer.render(accept, None).content_type)
    assert renderer.renders <= len(FORMATS), "at most one render per format per snapshot"
    assert len(types) <= len(FORMATS)
    assert renderer.cached_formats <= FORMATS
    assert renderer.renders == len(renderer.cached_formats)
    # The Content-Type is one of ours, never the client's version echoed back.
    assert types <= {f.content_type for f in FORMATS}
    assert not any("1.0.7" in t or "x=" in t for t in types)


def test_an_accept_version_that_is_no_number_gets_the_text_format() -> None:
    # prometheus_client compares "abc" with 1 and raised TypeError: no answer at all.
    renderer = MetricsRenderer(QuotaCollector(golden_store(), lambda: NOW), process_metrics=False)
    for accept in ("application/openmetrics-text; version=abc", "text/plain; version=1.x"):
        rendered = renderer.render(accept, None)
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
    _, golden, reload = store.snapshot()
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
    store = hostile_store()
    page = landing_page(store, NOW).encode("utf-8")  # strict, as web.py encodes it
    renderer = MetricsRenderer(QuotaCollector(store, lambda: NOW), process_metrics=False)
    text = renderer.render(None, None).body
    openmetrics = renderer.render("application/openmetrics-text; version=1.0.0", None).body

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
    assert len(page) < 20_000


def openmetrics_families(text: str) -> list[Any]:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om

    return list(om(text))  # type: ignore[no-untyped-call]
