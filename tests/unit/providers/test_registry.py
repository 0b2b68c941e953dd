"""The PROVIDERS registry, and the contract every registered adapter keeps.

Nothing here names a vendor: every check is derived from the registry, the modules
beside it and each vendor's recorded cases (tests/fixtures/<vendor>/<case>/, read by
tests/unit/providers/fixtures.py), so a new vendor is held to all of it without a line
here. What one vendor does (its path, auth header, intervals, what each of its cases
parses to) is tested in tests/unit/providers/test_<vendor>.py.

A recorded case says what it is by itself:
- its status (the case's `status` file, 200 when there is none): a 2xx case is a
  usage answer, which parses with no problems and keeps the invariants the collector
  relies on (finite non-negative values, docs/metrics.md units, well-formed meter ids
  and labels); a non-2xx case is a `PollError` carrying that status, classified as
  the answer it is, never blamed on our parsing;
- its name, in two conventions: `error_*` is a non-2xx case (a forgotten `status`
  file would otherwise pass it off as a 200), and `not_usage_*` is a 2xx answer that
  is not a usage answer at all (another endpoint's body), which the adapter must
  refuse as `Reason.PARSE` rather than read.
"""

from __future__ import annotations

import ast
import base64
import importlib
import math
import pkgutil
import re
from pathlib import Path

import pytest

import exporter
import exporter.providers
from exporter.model import MeterReading, PollError, Readings, Reason
from exporter.providers import PROVIDERS
from exporter.providers.base import Provider, render_template
from tests.unit.providers.fixtures import FIXTURES, Recorded, cases, recorded

NAMES = sorted(PROVIDERS)
REPO = Path(__file__).resolve().parents[3]
# The Python adapter modules beside the registry (base.py holds what they share, the
# declarative package turns YAML definitions into providers).
MODULES = sorted(
    m.name
    for m in pkgutil.iter_modules(exporter.providers.__path__)
    if m.name not in ("base", "declarative")
)
# The shipped declarative definitions (exporter/providers/<name>.yaml), checked in
# tests/unit/providers/test_declarative.py.
SHIPPED = sorted(p.stem for p in Path(exporter.providers.__file__).parent.glob("*.yaml"))

# docs/metrics.md, Units: "`seconds`, `bytes`, `credits`, `requests`, `jobs`, ...".
DESIGN_UNITS = frozenset({"seconds", "bytes", "credits", "requests", "jobs"})
# The "..." in that list, as the adapters use it, each a count of what the vendor
# sells: VidNavigator's indexed_channels counts channels (vidnavigator.py, like
# Tornado's `jobs` counts jobs); DeepL and ElevenLabs sell characters, ElevenLabs
# also voices and voice edits; Twilio's balance is money in the account's currency
# (its `currency` info label says which). A new unit belongs here only together
# with a reason.
EXTRA_UNITS = frozenset({"channels", "characters", "voices", "edits", "currency"})

# docs/metrics.md, Labels: saas_quota_rate_limit_requests `window` values.
DESIGN_WINDOWS = frozenset({"second", "minute", "day"})

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# An HTTP header name (RFC 9110 token).
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Labels the collector puts on saas_quota_account_info itself.
RESERVED_LABELS = frozenset({"provider", "account"})
# What a vendor's non-2xx answer can be classified as. TIMEOUT and NETWORK mean no
# answer came, PARSE blames our reading of a body, INTERNAL is the exporter's own bug.
ANSWER_REASONS = frozenset(
    {Reason.AUTH, Reason.FORBIDDEN, Reason.PAYMENT, Reason.RATE_LIMITED, Reason.HTTP, Reason.SERVER}
)

# 2000-01-01T00:00:00Z: any reset or period timestamp in a recorded body is later.
Y2K = 946684800.0


# --- the registry -------------------------------------------------------------------


def test_registry_cannot_be_changed_at_run_time() -> None:
    # Config validation and the poller read the same mapping; nobody may patch it.
    with pytest.raises(TypeError):
        PROVIDERS["extra"] = PROVIDERS[NAMES[0]]  # type: ignore[index]


@pytest.mark.parametrize("module_name", MODULES)
def test_each_vendor_module_is_registered_under_its_name(module_name: str) -> None:
    module = importlib.import_module(f"exporter.providers.{module_name}")
    # The module's PROVIDER is the registered object, and its parse lives there too.
    assert module.PROVIDER.name == module_name
    assert PROVIDERS[module_name] is module.PROVIDER
    assert module.PROVIDER.parse.__module__ == module.__name__


def test_every_vendor_module_is_registered() -> None:
    # The registry is a hand-written list: a module added without its line in
    # providers/__init__.py would be silently unusable.
    # A module or a definition added without being registered would be silently
    # unusable; a name in both would be ambiguous.
    assert sorted([*MODULES, *SHIPPED]) == NAMES
    assert not set(MODULES) & set(SHIPPED)


def test_provider_names_are_unique_across_modules() -> None:
    # The dict comprehension in __init__.py would silently keep only the last of two
    # providers sharing a name, so compare the modules' own PROVIDER objects.
    names = [
        importlib.import_module(f"exporter.providers.{name}").PROVIDER.name for name in MODULES
    ]
    assert sorted(names) == sorted(set(names)) == MODULES


@pytest.mark.parametrize("name", NAMES)
def test_registry_key_is_the_provider_name(name: str) -> None:
    provider = PROVIDERS[name]
    assert isinstance(provider, Provider)
    assert provider.name == name
    # The name is a label value and a config value: plain lower-case snake case.
    assert SNAKE_CASE.match(name)


@pytest.mark.parametrize("name", NAMES)
def test_path_is_absolute_without_a_trailing_slash(name: str) -> None:
    provider = PROVIDERS[name]
    assert provider.path.startswith("/")
    assert not provider.path.endswith("/")


@pytest.mark.parametrize("name", NAMES)
def test_default_base_url_is_https_without_a_trailing_slash(name: str) -> None:
    provider = PROVIDERS[name]
    assert provider.default_base_url.startswith("https://")
    assert not provider.default_base_url.endswith("/")
    assert provider.url(None) == provider.default_base_url + provider.path
    # docs/configuration.md: a base_url override replaces scheme://host[:port][/prefix] only.
    assert provider.url("http://127.0.0.1:8080/sim/") == "http://127.0.0.1:8080/sim" + (
        provider.path
    )


@pytest.mark.parametrize("name", NAMES)
def test_the_request_carries_the_key_exactly_one_way(name: str) -> None:
    """In a header (with its prefix), a query parameter or basic auth: never two."""
    provider = PROVIDERS[name]
    key = "k3y-0123456789"
    params = dict.fromkeys(provider.params, "p")
    request = provider.request(key, None, params, "acct")
    username = render_template(provider.auth_basic_username or "", params, "acct")
    basic = "Basic " + base64.b64encode(f"{username}:{key}".encode()).decode()
    in_query = key in request.url
    in_headers = [n for n, v in request.headers.items() if key in v or v == basic]
    assert in_query + len(in_headers) == 1, provider.auth_description
    if in_headers:
        assert HEADER_NAME.match(in_headers[0])
    if provider.auth_header and provider.auth_basic_username is None and not provider.auth_query:
        assert request.headers[provider.auth_header] == provider.auth_prefix + key


@pytest.mark.parametrize("name", NAMES)
def test_polling_intervals_are_consistent(name: str) -> None:
    provider = PROVIDERS[name]
    # config.py warns below min_interval: the default must never trigger that warning.
    assert 0 < provider.min_interval <= provider.default_interval
    assert provider.rate_limit_cooldown >= 0.0


@pytest.mark.parametrize("name", NAMES)
def test_metadata_is_present(name: str) -> None:
    provider = PROVIDERS[name]
    assert callable(provider.parse)
    assert provider.docs_url.startswith("https://")


@pytest.mark.parametrize("name", NAMES)
def test_each_vendor_has_cases_a_test_module_and_a_docs_page(name: str) -> None:
    # CONTRIBUTING.md, Adding a vendor: a module, a registry line, fixtures, a test, a page.
    assert cases(name), f"no recorded cases in tests/fixtures/{name}/"
    assert (Path(__file__).parent / f"test_{name}.py").is_file()
    assert (REPO / "docs" / "providers" / f"{name}.md").is_file()


def test_fixture_folders_are_all_registered_vendors() -> None:
    assert sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()) == NAMES


def _vendor_name_literals(path: Path) -> set[str]:
    """String constants in a module that are exactly a vendor name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if node.value in PROVIDERS
    }


def test_no_module_outside_providers_branches_on_a_vendor_name() -> None:
    # Adding a vendor touches its module and the registry line, nothing else
    # (CONTRIBUTING.md, Adding a vendor): config, poller, collector and web look vendors up in
    # PROVIDERS. The demo's simulated vendors (exporter/demo/vendors/) name theirs
    # through their adapter's module, not a literal.
    package = Path(exporter.__file__).parent
    offenders = {
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        if "providers" not in path.relative_to(package).parts
        if _vendor_name_literals(path)
    }
    assert offenders == set()


# --- key warnings ---------------------------------------------------------------------

KEYS = [
    "vx_test_Q8pLzK2mN4rT6vW",
    "vx_live_Q8pLzK2mN4rT6vW",
    "sk_Q8pLzK2mN4rT6vW",
    "pictai_Q8pLzK2mN4rT6vW",
    "Q8pLzK2mN4rT6vW",
    "",
]


WARNING_PROVIDERS = sorted(n for n, p in PROVIDERS.items() if p.key_warning is not None)


@pytest.mark.parametrize("name", WARNING_PROVIDERS)
@pytest.mark.parametrize("key", KEYS)
def test_key_warning_never_quotes_the_key(name: str, key: str) -> None:
    # base.Provider.key_warning: "it is given the key and must never quote it".
    check = PROVIDERS[name].key_warning
    assert check is not None
    remark = check(key)
    assert remark is None or isinstance(remark, str)
    if remark is not None and key:
        assert key not in remark
        assert "Q8pLzK2mN4rT6vW" not in remark


# --- recorded cases: what each one says it is ------------------------------------------

ERROR_PREFIX = "error_"
NOT_USAGE_PREFIX = "not_usage_"
# Everything a case folder may hold (tests/unit/providers/fixtures.py); a misspelt
# `header.json` or `status.txt` would otherwise be silently ignored.
CASE_FILES = re.compile(r"^(?:body\.[a-z]+|status|headers\.json)$")

CASES = [(vendor, case) for vendor in NAMES for case in cases(vendor)]


def _answered(status: int) -> bool:
    return 200 <= status < 300


def _kind(vendor: str, case: str) -> str:
    if not _answered(recorded(vendor, case).status):
        return "error"
    return "not_usage" if case.startswith(NOT_USAGE_PREFIX) else "success"


SUCCESS = [c for c in CASES if _kind(*c) == "success"]
NOT_USAGE = [c for c in CASES if _kind(*c) == "not_usage"]
ERRORS = [c for c in CASES if _kind(*c) == "error"]


def _ids(which: list[tuple[str, str]]) -> list[str]:
    return [f"{vendor}/{case}" for vendor, case in which]


def _parse(vendor: str, case: str) -> Readings:
    response = recorded(vendor, case)
    return PROVIDERS[vendor].parse(response.status, response.headers, response.body)


@pytest.mark.parametrize(("vendor", "case"), CASES, ids=_ids(CASES))
def test_every_case_folder_is_well_formed(vendor: str, case: str) -> None:
    folder = FIXTURES / vendor / case
    stray = sorted(p.name for p in folder.iterdir() if not CASE_FILES.match(p.name))
    assert stray == [], f"{vendor}/{case}: files the loader does not read"
    response = recorded(vendor, case)  # exactly one body.<ext>, a numeric status
    assert isinstance(response, Recorded)
    assert 100 <= response.status <= 599
    assert SNAKE_CASE.match(case), case
    if case.startswith(ERROR_PREFIX):
        assert not _answered(response.status), f"{vendor}/{case}: no `status` file?"
    if case.startswith(NOT_USAGE_PREFIX):
        assert _answered(response.status), f"{vendor}/{case}"
    assert all(name == name.lower() for name in response.headers)


@pytest.mark.parametrize("name", NAMES)
def test_every_vendor_has_a_recorded_success(name: str) -> None:
    assert any(vendor == name for vendor, _ in SUCCESS), f"{name}: no recorded usage answer"


@pytest.mark.parametrize(("vendor", "case"), NOT_USAGE, ids=_ids(NOT_USAGE))
def test_not_usage_cases_are_parse_errors(vendor: str, case: str) -> None:
    with pytest.raises(PollError) as info:
        _parse(vendor, case)
    assert info.value.reason is Reason.PARSE
    assert info.value.status == recorded(vendor, case).status


# --- recorded successes: the adapter contract -----------------------------------------


@pytest.mark.parametrize(("vendor", "case"), SUCCESS, ids=_ids(SUCCESS))
def test_success_fixture_parses_cleanly_and_deterministically(vendor: str, case: str) -> None:
    readings = _parse(vendor, case)
    assert readings.meters, "a recorded success must export something"
    assert readings.problems == ()
    # parse is pure: the same response gives the same readings.
    assert _parse(vendor, case) == readings


def _figures(m: MeterReading) -> dict[str, float | None]:
    return {"used": m.used, "limit": m.limit, "remaining": m.remaining}


@pytest.mark.parametrize(("vendor", "case"), SUCCESS, ids=_ids(SUCCESS))
def test_success_values_are_finite_and_non_negative(vendor: str, case: str) -> None:
    # docs/metrics.md, Failure semantics: never made-up values. NaN, inf or a negative quota
    # figure would be one, and would break every ratio a recording rule builds.
    readings = _parse(vendor, case)
    for m in readings.meters:
        for field, value in _figures(m).items():
            if value is not None:
                assert math.isfinite(value), f"{m.meter}.{field} = {value}"
                assert value >= 0, f"{m.meter}.{field} = {value}"
        effective = m.effective_remaining
        if effective is not None:
            assert math.isfinite(effective)
            assert effective >= 0
    for window, limit in readings.rate_limits:
        assert math.isfinite(limit), window
        assert limit > 0, window
    for cap, value in readings.key_caps:
        assert math.isfinite(value), cap
        assert value > 0, cap


@pytest.mark.parametrize(("vendor", "case"), SUCCESS, ids=_ids(SUCCESS))
def test_success_remaining_matches_limit_minus_used(vendor: str, case: str) -> None:
    # Not a rule of parse (docs/metrics.md: the vendor's remaining is exported as given),
    # but every recorded body is internally consistent, so where a meter has all three
    # figures they agree; a disagreement means the adapter read the wrong field or
    # converted one figure with a different unit factor than the others.
    readings = _parse(vendor, case)
    for m in readings.meters:
        if m.used is not None and m.limit is not None and m.remaining is not None:
            assert m.remaining == pytest.approx(m.limit - m.used, rel=1e-9, abs=1e-9), m.meter


@pytest.mark.parametrize(("vendor", "case"), SUCCESS, ids=_ids(SUCCESS))
def test_success_unlimited_meters_carry_no_limit_or_remaining(vendor: str, case: str) -> None:
    # docs/metrics.md: saas_quota_limit and _remaining are absent when unlimited.
    for m in _parse(vendor, case).meters:
        if m.unlimited:
            assert m.limit is None, m.meter
            assert m.remaining is None, m.meter
            assert m.effective_remaining is None, m.meter


@pytest.mark.parametrize(("vendor", "case"), SUCCESS, ids=_ids(SUCCESS))
def test_success_timestamps_are_plausible_unix_seconds(vendor: str, case: str) -> None:
    # Seconds, not milliseconds (1e12+ would pass isfinite but be wrong by 1000x).
    readings = _parse(vendor, case)
    stamps: list[float] = []
    for m in readings.meters:
        if m.reset_timestamp is not None:
            stamps.append(m.reset_timestamp)
        if m.period_start_timestamp is not None:
            stamps.append(m.period_start_timestamp)
        if m.reset_timestamp is not None and m.period_start_timestamp is not None:
            assert m.period_start_timestamp < m.reset_timestamp, m.meter
    if readings.api_key_expiry_timestamp is not None:
        stamps.append(readings.api_key_expiry_timestamp)
    for stamp in stamps:
        assert math.isfinite(stamp)
        assert Y2K < stamp < 1e10


@pytest.mark.parametrize(("vendor", "case"), SUCCESS, ids=_ids(SUCCESS))
def test_success_meters_use_design_units_and_snake_case_ids(vendor: str, case: str) -> None:
    for m in _parse(vendor, case).meters:
        assert m.unit in DESIGN_UNITS | EXTRA_UNITS, f"{m.meter}: unit {m.unit!r}"
        assert SNAKE_CASE.match(m.meter), m.meter
        # docs/metrics.md, Units: "the meter id carries the unit when it is physical" - only then.
        assert (m.unit == "seconds") == m.meter.endswith("_seconds"), m.meter
        assert (m.unit == "bytes") == m.meter.endswith("_bytes"), m.meter
        # No percentages: ratios are the recording rules' job.
        # Word by word: GitHub's `integration_manifest` is no ratio.
        words = set(m.meter.split("_"))
        assert not words & {"percent", "percentage", "pct", "ratio"}, m.meter


@pytest.mark.parametrize(("vendor", "case"), SUCCESS, ids=_ids(SUCCESS))
def test_success_labels_are_valid_and_low_cardinality(vendor: str, case: str) -> None:
    readings = _parse(vendor, case)
    label_names = [label for label, _ in readings.account_info]
    assert len(label_names) == len(set(label_names))
    for label, value in readings.account_info:
        assert LABEL_NAME.match(label), label
        assert not label.startswith("__"), label
        assert label not in RESERVED_LABELS, label
        assert value, label
        assert value == value.strip(), label
        assert "\n" not in value, label
        assert len(value) <= 200, label
    windows = [window for window, _ in readings.rate_limits]
    assert set(windows) <= DESIGN_WINDOWS
    assert len(windows) == len(set(windows))
    caps = [cap for cap, _ in readings.key_caps]
    assert all(SNAKE_CASE.match(cap) for cap in caps)
    assert len(caps) == len(set(caps))


def test_success_fixtures_cover_every_design_unit() -> None:
    # Keeps the unit check above meaningful: if a unit stopped appearing in any
    # fixture, this points at the gap instead of the check passing vacuously.
    units = {m.unit for vendor, case in SUCCESS for m in _parse(vendor, case).meters}
    assert units == DESIGN_UNITS | EXTRA_UNITS


# --- recorded errors ----------------------------------------------------------------


@pytest.mark.parametrize(("vendor", "case"), ERRORS, ids=_ids(ERRORS))
def test_error_case_is_a_poll_error_classified_as_the_answer_it_is(vendor: str, case: str) -> None:
    status = recorded(vendor, case).status
    with pytest.raises(PollError) as info:
        _parse(vendor, case)
    error = info.value
    assert error.status == status
    # A non-2xx answer is never blamed on our parsing, nor on the exporter.
    assert error.reason is not Reason.PARSE
    assert error.reason in ANSWER_REASONS, error.reason
    # Logged and shown on `/`: starts with the status, stays on one line.
    assert error.message.startswith(f"HTTP {status}: ")
    assert "\n" not in error.message
    assert len(error.body_excerpt) <= 203
    if error.retry_after is not None:
        assert math.isfinite(error.retry_after)
        assert error.retry_after >= 0
