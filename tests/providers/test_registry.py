"""The PROVIDERS registry, and the contract every registered adapter keeps.

The first half checks the registry itself against docs/providers/ (names, paths, auth, polling
defaults) and that adding a vendor stays a one-module change. The second half runs
every recorded response in tests/fixtures/<vendor>/ through its adapter and checks
the invariants the collector relies on, whatever the vendor: finite non-negative
values, docs/metrics.md units, well-formed meter ids and labels, classified errors.
"""

from __future__ import annotations

import ast
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
from exporter.providers.base import Provider
from tests.providers.fixtures import FIXTURES, body, headers

VENDORS = frozenset({"pictory", "tornado", "piloterr", "vidnavigator", "vertaaux"})

# docs/providers/README.md: the path each adapter appends to its base URL.
DESIGN_PATHS = {
    "pictory": "/pictoryapis/v1/quota",
    "tornado": "/usage",
    "piloterr": "/v2/usage",
    "vidnavigator": "/v1/usage",
    "vertaaux": "/api/v1/quota",
}

# docs/providers/<name>.md, Endpoint and auth: where the key goes. Every vendor takes the raw key.
README_AUTH_HEADERS = {
    "pictory": "authorization",
    "tornado": "x-api-key",
    "piloterr": "x-api-key",
    "vidnavigator": "x-api-key",
    "vertaaux": "x-api-key",
}

# docs/metrics.md, Units: "`seconds`, `bytes`, `credits`, `requests`, `jobs`, ...".
DESIGN_UNITS = frozenset({"seconds", "bytes", "credits", "requests", "jobs"})
# The "..." in that list, as the adapters use it: VidNavigator's indexed_channels
# counts channels (vidnavigator.py, like Tornado's `jobs` counts jobs). A new unit
# belongs here only together with a reason.
EXTRA_UNITS = frozenset({"channels"})

# docs/metrics.md, Labels: saas_quota_rate_limit_requests `window` values.
DESIGN_WINDOWS = frozenset({"second", "minute", "day"})

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Labels the collector puts on saas_quota_account_info itself.
RESERVED_LABELS = frozenset({"provider", "account"})

# 2000-01-01T00:00:00Z: any reset or period timestamp in a recorded body is later.
Y2K = 946684800.0


# --- the registry -------------------------------------------------------------------


def test_registry_holds_exactly_the_five_vendors() -> None:
    assert set(PROVIDERS) == VENDORS


def test_registry_cannot_be_changed_at_run_time() -> None:
    # Config validation and the poller read the same mapping; nobody may patch it.
    with pytest.raises(TypeError):
        PROVIDERS["extra"] = PROVIDERS["pictory"]  # type: ignore[index]


@pytest.mark.parametrize("name", sorted(VENDORS))
def test_registry_key_is_the_provider_name_and_its_module_name(name: str) -> None:
    provider = PROVIDERS[name]
    assert provider.name == name
    module = importlib.import_module(f"exporter.providers.{name}")
    # The module's PROVIDER is the registered object, and its parse lives there too.
    assert module.PROVIDER is provider
    assert provider.parse.__module__ == module.__name__
    # The name is a label value and a config value: plain lower-case snake case.
    assert SNAKE_CASE.match(name)


def test_every_vendor_module_is_registered() -> None:
    # The registry is a hand-written list: a module added without its line in
    # providers/__init__.py would be silently unusable.
    modules = {m.name for m in pkgutil.iter_modules(exporter.providers.__path__)}
    assert modules - {"base"} == set(PROVIDERS)


def test_provider_names_are_unique_across_modules() -> None:
    # The dict comprehension in __init__.py would silently keep only the last of two
    # providers sharing a name, so compare the modules' own PROVIDER objects.
    names = [
        importlib.import_module(f"exporter.providers.{m.name}").PROVIDER.name
        for m in pkgutil.iter_modules(exporter.providers.__path__)
        if m.name != "base"
    ]
    assert sorted(names) == sorted(set(names)) == sorted(VENDORS)


@pytest.mark.parametrize("name", sorted(VENDORS))
def test_path_is_the_one_design_md_fixes(name: str) -> None:
    provider = PROVIDERS[name]
    assert provider.path == DESIGN_PATHS[name]
    assert provider.path.startswith("/")
    assert not provider.path.endswith("/")


@pytest.mark.parametrize("name", sorted(VENDORS))
def test_default_base_url_is_https_without_a_trailing_slash(name: str) -> None:
    provider = PROVIDERS[name]
    assert provider.default_base_url.startswith("https://")
    assert not provider.default_base_url.endswith("/")
    assert provider.url(None) == provider.default_base_url + provider.path
    # docs/configuration.md: a base_url override replaces scheme://host[:port][/prefix] only.
    assert provider.url("http://127.0.0.1:8080/sim/") == "http://127.0.0.1:8080/sim" + (
        provider.path
    )


@pytest.mark.parametrize("name", sorted(VENDORS))
def test_auth_header_carries_the_raw_key(name: str) -> None:
    provider = PROVIDERS[name]
    # Header names are case-insensitive on the wire; compare them lower-cased.
    assert provider.auth_header.lower() == README_AUTH_HEADERS[name]
    assert provider.auth_prefix == ""
    key = "k3y-0123456789"
    assert provider.auth_headers(key) == {provider.auth_header: key}


@pytest.mark.parametrize("name", sorted(VENDORS))
def test_polling_intervals_follow_the_guidance(name: str) -> None:
    provider = PROVIDERS[name]
    # docs/providers/README.md, Polling guidance: 300 s default and a 60 s floor for all five.
    assert provider.default_interval == 300.0
    assert provider.min_interval == 60.0
    # config.py warns below min_interval: the default must never trigger that warning.
    assert 0 < provider.min_interval <= provider.default_interval
    assert provider.rate_limit_cooldown >= 0.0


@pytest.mark.parametrize("name", sorted(VENDORS))
def test_metadata_is_present(name: str) -> None:
    provider = PROVIDERS[name]
    assert callable(provider.parse)
    assert provider.docs_url.startswith("https://")
    assert isinstance(provider, Provider)


@pytest.mark.parametrize("name", sorted(VENDORS))
def test_each_vendor_has_fixtures_and_a_test_module(name: str) -> None:
    # CONTRIBUTING.md, Adding a vendor: a module, a registry line, fixtures, tests.
    assert (FIXTURES / name).is_dir()
    assert (Path(__file__).parent / f"test_{name}.py").is_file()


def test_fixture_folders_are_all_registered_vendors() -> None:
    assert {p.name for p in FIXTURES.iterdir() if p.is_dir()} == set(PROVIDERS)


def _vendor_name_literals(path: Path) -> set[str]:
    """String constants in a module that are exactly a vendor name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if node.value in VENDORS
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


# --- recorded responses: which is which ------------------------------------------------

# 200 bodies that the vendor tests expect to be refused (not a usage answer at all).
NOT_USAGE_BODIES = frozenset({("tornado", "dashboard_billing_legacy.json")})
# Error fixtures whose name carries no status, with the status their tests use.
ERROR_STATUS_OVERRIDES = {("pictory", "error_legacy_envelope.json"): 400}
# Success bodies recorded together with their response headers.
SUCCESS_HEADERS = {
    ("vertaaux", "quota_pro.json"): "headers.json",
    ("vertaaux", "quota_free_exhausted.json"): "headers_free_exhausted.json",
}


def _files(vendor: str) -> list[str]:
    return sorted(p.name for p in (FIXTURES / vendor).iterdir() if p.is_file())


def _is_header_map(name: str) -> bool:
    return name.startswith("headers")


SUCCESS = [
    (vendor, name)
    for vendor in sorted(VENDORS)
    for name in _files(vendor)
    if not name.startswith("error_")
    and not _is_header_map(name)
    and (vendor, name) not in NOT_USAGE_BODIES
]
ERRORS = [
    (vendor, name)
    for vendor in sorted(VENDORS)
    for name in _files(vendor)
    if name.startswith("error_")
]


def _ids(cases: list[tuple[str, str]]) -> list[str]:
    return [f"{vendor}/{name}" for vendor, name in cases]


def _status(vendor: str, name: str) -> int:
    override = ERROR_STATUS_OVERRIDES.get((vendor, name))
    if override is not None:
        return override
    found = re.match(r"^error_(\d{3})", name)
    assert found is not None, f"{vendor}/{name}: name carries no status"
    return int(found.group(1))


def _parse_success(vendor: str, name: str) -> Readings:
    header_file = SUCCESS_HEADERS.get((vendor, name))
    hdrs = headers(vendor, header_file) if header_file else {}
    return PROVIDERS[vendor].parse(200, hdrs, body(vendor, name))


def test_every_fixture_is_classified_as_success_error_headers_or_not_usage() -> None:
    # A new fixture is picked up by the contract tests below without a list to edit;
    # this guards the naming convention they rely on.
    for vendor in sorted(VENDORS):
        names = _files(vendor)
        assert any((vendor, n) in SUCCESS for n in names), f"{vendor}: no success fixture"
        for n in names:
            kinds = [
                (vendor, n) in SUCCESS,
                (vendor, n) in ERRORS,
                _is_header_map(n),
                (vendor, n) in NOT_USAGE_BODIES,
            ]
            assert kinds.count(True) == 1, f"{vendor}/{n}"
    for (vendor, name), header_file in SUCCESS_HEADERS.items():
        assert (vendor, name) in SUCCESS
        assert (FIXTURES / vendor / header_file).is_file()
    for vendor, name in ERRORS:
        assert 100 <= _status(vendor, name) <= 599


@pytest.mark.parametrize(("vendor", "name"), sorted(NOT_USAGE_BODIES))
def test_not_usage_bodies_are_parse_errors(vendor: str, name: str) -> None:
    with pytest.raises(PollError) as info:
        PROVIDERS[vendor].parse(200, {}, body(vendor, name))
    assert info.value.reason is Reason.PARSE


# --- recorded successes: the adapter contract -----------------------------------------


@pytest.mark.parametrize(("vendor", "name"), SUCCESS, ids=_ids(SUCCESS))
def test_success_fixture_parses_cleanly_and_deterministically(vendor: str, name: str) -> None:
    readings = _parse_success(vendor, name)
    assert readings.meters, "a recorded success must export something"
    assert readings.problems == ()
    # parse is pure: the same response gives the same readings.
    assert _parse_success(vendor, name) == readings


def _figures(m: MeterReading) -> dict[str, float | None]:
    return {"used": m.used, "limit": m.limit, "remaining": m.remaining}


@pytest.mark.parametrize(("vendor", "name"), SUCCESS, ids=_ids(SUCCESS))
def test_success_values_are_finite_and_non_negative(vendor: str, name: str) -> None:
    # docs/metrics.md, Failure semantics: never made-up values. NaN, inf or a negative quota
    # figure would be one, and would break every ratio a recording rule builds.
    readings = _parse_success(vendor, name)
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


@pytest.mark.parametrize(("vendor", "name"), SUCCESS, ids=_ids(SUCCESS))
def test_success_remaining_matches_limit_minus_used(vendor: str, name: str) -> None:
    # Not a rule of parse (docs/metrics.md: the vendor's remaining is exported as given),
    # but every recorded body is internally consistent, so where a meter has all three
    # figures they agree; a disagreement means the adapter read the wrong field or
    # converted one figure with a different unit factor than the others.
    readings = _parse_success(vendor, name)
    for m in readings.meters:
        if m.used is not None and m.limit is not None and m.remaining is not None:
            assert m.remaining == pytest.approx(m.limit - m.used, rel=1e-9, abs=1e-9), m.meter


@pytest.mark.parametrize(("vendor", "name"), SUCCESS, ids=_ids(SUCCESS))
def test_success_unlimited_meters_carry_no_limit_or_remaining(vendor: str, name: str) -> None:
    # docs/metrics.md: saas_quota_limit and _remaining are absent when unlimited.
    for m in _parse_success(vendor, name).meters:
        if m.unlimited:
            assert m.limit is None, m.meter
            assert m.remaining is None, m.meter
            assert m.effective_remaining is None, m.meter


@pytest.mark.parametrize(("vendor", "name"), SUCCESS, ids=_ids(SUCCESS))
def test_success_timestamps_are_plausible_unix_seconds(vendor: str, name: str) -> None:
    # Seconds, not milliseconds (1e12+ would pass isfinite but be wrong by 1000x).
    readings = _parse_success(vendor, name)
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


@pytest.mark.parametrize(("vendor", "name"), SUCCESS, ids=_ids(SUCCESS))
def test_success_meters_use_design_units_and_snake_case_ids(vendor: str, name: str) -> None:
    for m in _parse_success(vendor, name).meters:
        assert m.unit in DESIGN_UNITS | EXTRA_UNITS, f"{m.meter}: unit {m.unit!r}"
        assert SNAKE_CASE.match(m.meter), m.meter
        # docs/metrics.md, Units: "the meter id carries the unit when it is physical" - only then.
        assert (m.unit == "seconds") == m.meter.endswith("_seconds"), m.meter
        assert (m.unit == "bytes") == m.meter.endswith("_bytes"), m.meter
        # No percentages: ratios are the recording rules' job.
        assert "percent" not in m.meter, m.meter
        assert "ratio" not in m.meter, m.meter


@pytest.mark.parametrize(("vendor", "name"), SUCCESS, ids=_ids(SUCCESS))
def test_success_labels_are_valid_and_low_cardinality(vendor: str, name: str) -> None:
    readings = _parse_success(vendor, name)
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
    units = {m.unit for vendor, name in SUCCESS for m in _parse_success(vendor, name).meters}
    assert units == DESIGN_UNITS | EXTRA_UNITS


# --- recorded errors ----------------------------------------------------------------


@pytest.mark.parametrize(("vendor", "name"), ERRORS, ids=_ids(ERRORS))
def test_error_fixture_is_a_classified_poll_error(vendor: str, name: str) -> None:
    status = _status(vendor, name)
    with pytest.raises(PollError) as info:
        PROVIDERS[vendor].parse(status, {}, body(vendor, name))
    error = info.value
    assert error.status == status
    # A non-2xx answer is never blamed on our parsing.
    assert error.reason is not Reason.PARSE
    # Logged and shown on `/`: starts with the status, stays on one line.
    assert error.message.startswith(f"HTTP {status}: ")
    assert "\n" not in error.message
    assert len(error.body_excerpt) <= 203
    if error.retry_after is not None:
        assert math.isfinite(error.retry_after)
        assert error.retry_after >= 0
