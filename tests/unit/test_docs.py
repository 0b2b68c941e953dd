"""The docs stay true to the code: every table that mirrors code is checked against it.

- docs/metrics.md lists exactly the metric families `exporter.families` exports (derived
  from a snapshot of every recorded fixture), with their types and labels, and every
  poll-error reason of `exporter.model.Reason`.
- docs/configuration.md lists exactly the keys the config loader accepts, and its
  annotated example (like the README's minimal config) loads without a problem.
- Every registered provider has docs/providers/<name>.md naming its endpoint, auth
  header, meters, info labels and recorded fixtures, and the README and the providers
  index list exactly the registered providers.
- Every relative link and anchor in README.md, CONTRIBUTING.md and docs/ resolves, and
  so does every link into this repository on GitHub (the alerts' `runbook_url`s).
- No doc, code or deploy file cites a file outside the repository.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from prometheus_client.core import Metric

from exporter.config import _ACCOUNT_KEYS, _GLOBAL_KEYS, _TOP_KEYS, parse_config
from exporter.families import families
from exporter.model import PollError, Readings, Reason
from exporter.providers import PROVIDERS
from exporter.state import ReloadStatus, StateStore
from tests.fakes import up_state
from tests.unit.providers.fixtures import FIXTURES, cases, recorded

REPO: Final = Path(__file__).resolve().parents[2]
DOCS: Final = REPO / "docs"
README: Final = REPO / "README.md"
METRICS_DOC: Final = DOCS / "metrics.md"
CONFIG_DOC: Final = DOCS / "configuration.md"
PROVIDERS_DIR: Final = DOCS / "providers"
PROVIDERS_INDEX: Final = PROVIDERS_DIR / "README.md"
MARKDOWN: Final = sorted([README, REPO / "CONTRIBUTING.md", *DOCS.rglob("*.md")])
REPO_URL: Final = "https://github.com/saas-quota-exporter/saas-quota-exporter/blob/main/"
NOW: Final = 1_780_000_000.0

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_HEADING = re.compile(r"^(#{1,6}) +(.+?) *#*$", re.MULTILINE)
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
_CELL_NAME = re.compile(r"^\| `([^`]+)` \|", re.MULTILINE)


# --- reading Markdown -----------------------------------------------------------------


def prose(text: str) -> str:
    """The text without fenced code blocks (headings and links in them are not real)."""
    return _FENCE.sub("", text)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading (before de-duplication)."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a Markdown file, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    for _, heading in _HEADING.findall(prose(path.read_text())):
        anchor = github_anchor(heading)
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        result.add(anchor if count == 0 else f"{anchor}-{count}")
    return result


def section(path: Path, heading: str) -> str:
    """The text under a `## heading`, up to the next heading of the same or higher level."""
    text = prose(path.read_text())
    match = re.search(rf"^(#+) {re.escape(heading)}\n", text, re.MULTILINE)
    assert match, f"{path.relative_to(REPO)}: no section {heading!r}"
    level = len(match.group(1))
    end = re.search(rf"^#{{1,{level}}} ", text[match.end() :], re.MULTILINE)
    return text[match.end() : match.end() + end.start() if end else len(text)]


def first_cells(text: str) -> list[str]:
    """The backticked first cell of every table row."""
    return _CELL_NAME.findall(text)


# --- metrics --------------------------------------------------------------------------


def _fixture_readings(name: str) -> Iterator[tuple[str, Readings]]:
    """Every recorded case of one vendor that parses as a quota answer, by case name.

    Each case is parsed as it was answered (its status and headers); error answers
    and bodies that are not a usage answer raise PollError and are skipped.
    """
    provider = PROVIDERS[name]
    for case in cases(name):
        response = recorded(name, case)
        try:
            readings = provider.parse(response.status, response.headers, response.body)
        except PollError:
            continue
        yield case, readings


def _snapshot_store() -> StateStore:
    """One healthy account per recorded fixture of every vendor, reload succeeded."""
    store = StateStore()
    states = []
    for name in PROVIDERS:
        for index, (_, readings) in enumerate(_fixture_readings(name)):
            account = f"account{index}"
            states.append(up_state(name, account, readings, NOW, last_poll_duration=0.25))
    store.set_accounts(states)
    store.set_reload(ReloadStatus(successful=True, last_success=NOW - 60))
    store.set_shard(1, 3)  # saas_quota_shard_info is exported only when sharded
    return store


def _exported_families() -> dict[str, Metric]:
    """What `families` exports for that snapshot, by exposed name (`_total` for counters)."""
    exported = families(_snapshot_store().snapshot(), NOW)
    return {
        (family.name + "_total" if family.type == "counter" else family.name): family
        for family in exported
    }


def _documented_metrics() -> dict[str, tuple[str, str]]:
    """docs/metrics.md "Metric families": name -> (type, labels cell)."""
    rows = re.findall(
        r"^\| `(saas_quota_\w+)` \| *([^|]*?) *\| *([^|]*?) *\|",
        section(METRICS_DOC, "Metric families"),
        re.MULTILINE,
    )
    return {name: (kind.strip(), labels.strip()) for name, kind, labels in rows}


def test_metrics_doc_lists_exactly_the_exported_families() -> None:
    exported, documented = _exported_families(), _documented_metrics()
    assert sorted(set(exported) - set(documented)) == [], "exported but not in docs/metrics.md"
    assert sorted(set(documented) - set(exported)) == [], "in docs/metrics.md but not exported"


@pytest.mark.parametrize("name", sorted(_documented_metrics()))
def test_metrics_doc_gives_the_type_and_labels_the_collector_uses(name: str) -> None:
    family = _exported_families()[name]
    kind, labels_cell = _documented_metrics()[name]
    assert kind.split()[0] == family.type, f"{name}: documented as {kind}, is {family.type}"
    documented = {part.strip() for part in labels_cell.split(",") if part.strip()}
    open_ended = any(label.startswith("+") for label in documented)
    documented = {label for label in documented if not label.startswith("+")}
    assert family.samples, f"{name}: no sample in a snapshot of every fixture; add a fixture"
    for sample in family.samples:
        actual = set(sample.labels)
        if open_ended:  # saas_quota_account_info: vendor labels on top of the fixed ones
            assert documented <= actual, f"{name}: {sorted(documented - actual)} missing"
        else:
            assert actual == documented, f"{name}: has {sorted(actual)}, documented {labels_cell}"


def test_metrics_doc_lists_every_poll_error_reason() -> None:
    documented = set(first_cells(section(METRICS_DOC, "Error reasons")))
    reasons = {reason.value for reason in Reason}
    assert sorted(reasons - documented) == [], "a Reason missing from docs/metrics.md"
    # `internal` (issue 8) is documented ahead of its arrival in the enum; once it is in
    # Reason this allowance is a no-op.
    assert sorted(documented - reasons - {"internal"}) == [], "a documented reason not in Reason"


def test_help_text_and_docs_name_the_same_reasons() -> None:
    # The collector's HELP lists Reason too: a reason added there shows up in docs.
    help_text = _exported_families()["saas_quota_poll_errors_total"].documentation
    documented = set(first_cells(section(METRICS_DOC, "Error reasons")))
    assert {word.strip(" .,") for word in help_text.split(":", 1)[1].split(",")} <= documented


# --- configuration --------------------------------------------------------------------


def test_configuration_doc_lists_exactly_the_accepted_keys() -> None:
    accepted = (
        set(_TOP_KEYS)
        | {f"global.{key}" for key in _GLOBAL_KEYS}
        | {f"accounts[].{key}" for key in _ACCOUNT_KEYS}
    )
    documented = first_cells(section(CONFIG_DOC, "Keys"))
    assert len(documented) == len(set(documented)), "a key documented twice"
    assert sorted(accepted - set(documented)) == [], "accepted but not in docs/configuration.md"
    assert sorted(set(documented) - accepted) == [], "documented but not accepted"


def _yaml_block(path: Path, heading: str) -> str:
    match = re.search(r"```yaml\n(.*?)```", section_raw(path, heading), re.DOTALL)
    assert match, f"{path.relative_to(REPO)}: no yaml block under {heading!r}"
    return match.group(1)


def section_raw(path: Path, heading: str) -> str:
    """Like `section`, but keeping code blocks (and only ending at a real heading)."""
    text = path.read_text()
    start = text.index(f"## {heading}\n")
    following = [m.start() for m in re.finditer(r"^## ", text, re.MULTILINE) if m.start() > start]
    return text[start : following[0] if following else len(text)]


@pytest.mark.parametrize(
    ("path", "heading"),
    [(CONFIG_DOC, "An annotated example with every key"), (README, "A minimal real config")],
    ids=["configuration-example", "readme-minimal"],
)
def test_documented_configs_load_without_problems(path: Path, heading: str, tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "vertaaux.key").write_text("vx_live_0123456789abcdef\n")
    environ = {f"{name.upper()}_API_KEY": f"{name}-key-0123456789" for name in PROVIDERS}
    config = parse_config(
        _yaml_block(path, heading), source="doc.yml", environ=environ, base_dir=tmp_path
    )
    assert config.accounts
    assert config.warnings == ()


# --- providers ------------------------------------------------------------------------


def _provider_links(path: Path) -> list[str]:
    prefix = "" if path.parent == PROVIDERS_DIR else "docs/providers/"
    found = re.findall(rf"\]\({re.escape(prefix)}(\w+)\.md\)", prose(path.read_text()))
    return [name for name in found if name != "README"]


def test_one_page_per_registered_provider() -> None:
    pages = {p.stem for p in PROVIDERS_DIR.glob("*.md")} - {"README"}
    assert pages == set(PROVIDERS)


@pytest.mark.parametrize("path", [README, PROVIDERS_INDEX], ids=lambda p: p.name)
def test_provider_lists_match_the_registry(path: Path) -> None:
    links = _provider_links(path)
    assert len(links) == len(set(links)), f"{path.relative_to(REPO)} lists a provider twice"
    assert set(links) == set(PROVIDERS)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_provider_page_names_endpoint_and_auth(name: str) -> None:
    provider = PROVIDERS[name]
    text = (PROVIDERS_DIR / f"{name}.md").read_text()
    assert f"(`{name}`)" in text.splitlines()[0], "the title names the config's provider"
    assert provider.default_base_url + provider.path in text
    # `auth_header: <key>` for the five; declarative ones may use a prefix, basic or a query.
    assert f"`{provider.auth_description}`" in text
    if provider.docs_url:
        assert provider.docs_url in text


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_provider_page_lists_every_meter_and_label_its_fixtures_produce(name: str) -> None:
    path = PROVIDERS_DIR / f"{name}.md"
    meters_text = section(path, "Meters")
    labels_text = section(path, "Labels")
    meters = {(m.meter, m.unit) for _, r in _fixture_readings(name) for m in r.meters}
    info_labels = {label for _, r in _fixture_readings(name) for label, _ in r.account_info}
    assert meters, f"no fixture of {name} parses"
    for meter, unit in sorted(meters):
        assert f"`{meter}`" in meters_text, f"{name}: meter {meter} not in its page"
        row = next(line for line in meters_text.splitlines() if f"`{meter}`" in line)
        if row.startswith(f"| `{meter}`"):  # a meter's own row names its unit
            assert f"| {unit} " in row or f"| {unit}(" in row, f"{name}: {meter} unit {unit}"
    for label in sorted(info_labels):
        assert re.search(rf"\b{label}\b", labels_text), f"{name}: label {label} not documented"


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_provider_page_lists_every_recorded_fixture(name: str) -> None:
    fixtures = section(PROVIDERS_DIR / f"{name}.md", "Recorded fixtures")
    listed = {cell.split(".")[0].rstrip("/") for cell in first_cells(fixtures)}
    present = set(cases(name))
    assert sorted(present - listed) == [], f"fixtures of {name} missing from its page"
    assert sorted(listed - present) == [], f"{name}'s page lists fixtures that do not exist"


# --- links ----------------------------------------------------------------------------


def _links() -> Iterator[tuple[Path, str]]:
    for path in MARKDOWN:
        text = _INLINE_CODE.sub("", prose(path.read_text()))
        for target in _LINK.findall(text):
            yield path, target


def _check_target(source: Path, target: str) -> str | None:
    """None when a relative link resolves, else what is wrong with it."""
    file_part, _, anchor = target.partition("#")
    resolved = (source.parent / file_part).resolve() if file_part else source
    if not resolved.is_relative_to(REPO):
        return f"{target}: leaves the repository"
    if not resolved.exists():
        return f"{target}: no such file"
    if anchor:
        if resolved.suffix != ".md":
            return f"{target}: an anchor into a file that is not Markdown"
        if anchor not in anchors(resolved):
            return f"{target}: no heading with anchor #{anchor} in {resolved.relative_to(REPO)}"
    return None


def test_every_relative_link_resolves() -> None:
    problems = [
        f"{source.relative_to(REPO)}: {problem}"
        for source, target in _links()
        if not re.match(r"^[a-z]+:", target)
        if (problem := _check_target(source, target)) is not None
    ]
    assert problems == []


def test_every_link_into_the_repository_on_github_resolves() -> None:
    # The alerts' runbook_url, the generated PrometheusRule and the promtool tests.
    checked, problems = 0, []
    for path in _scanned_files():
        for url in re.findall(re.escape(REPO_URL) + r"[^\s'\"<>)]+", path.read_text()):
            checked += 1
            problem = _check_target(REPO / "index.md", url.removeprefix(REPO_URL))
            if problem is not None:
                problems.append(f"{path.relative_to(REPO)}: {problem}")
    assert checked, "no runbook_url found: has the base URL changed?"
    assert problems == []


def test_runbook_anchors_exist_for_every_alert() -> None:
    alerts = (REPO / "deploy" / "prometheus" / "saas-quota.alerts.yml").read_text()
    names = set(re.findall(r"^\s*- alert: (\w+)$", alerts, re.MULTILINE))
    urls = re.findall(r"runbook_url: (\S+)", alerts)
    assert names
    assert len(urls) >= len(names)
    runbooks = anchors(DOCS / "runbooks.md")
    for name in names:
        assert name.lower() in runbooks, f"docs/runbooks.md has no section for {name}"
    for url in urls:
        assert url.startswith(REPO_URL + "docs/runbooks.md#"), url


# --- no citations outside the repository -----------------------------------------------

_SCANNED_DIRS: Final = ("exporter", "tests", "benchmarks", "deploy", "grafana", "docs", ".ci")
_SCANNED_TOP: Final = ("README.md", "CONTRIBUTING.md", "Makefile", "Dockerfile", "pyproject.toml")
_SKIPPED: Final = (FIXTURES, REPO / "tests" / "golden", Path(__file__).resolve())
# A file name or path as prose cites it: not part of a longer path or URL.
_CITED_PATH = re.compile(r"(?<![\w./<>-])((?:[\w-]+/)*[\w.-]+\.md)\b")
_DOCS_PATH = re.compile(r"(?<![\w./<>-])(docs/[\w./-]*)")
# `owner/name path`: a file of another public repository (exporter-toolkit's docs).
_OTHER_REPO = re.compile(r"[\w.-]+/[\w.-]+\s+$")
_OUTSIDE = (
    re.compile(r"\bDESIGN\.md\b|\bSTYLE\.md\b"),
    re.compile(r"\.\./shared\b"),
    re.compile(r"/work/"),
    re.compile(r"\bREADME(?:\.md)? (?:section )?\d"),
)


def _scanned_files() -> Iterator[Path]:
    for name in _SCANNED_TOP:
        yield REPO / name
    for folder in _SCANNED_DIRS:
        for path in sorted((REPO / folder).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            if any(path == s or path.is_relative_to(s) for s in _SKIPPED):
                continue
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            yield path


def _cites(path: Path, cited: str) -> bool:
    """Whether a cited path exists, from the repository root or beside the citing file."""
    cited = cited.rstrip(".")
    return (REPO / cited).exists() or (path.parent / cited).exists()


def test_no_file_cites_a_path_outside_the_repository() -> None:
    problems = []
    for path in _scanned_files():
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(REPO)
        for pattern in _OUTSIDE:
            problems += [f"{where}: {m.group(0)!r}" for m in pattern.finditer(text)]
        for match in (*_CITED_PATH.finditer(text), *_DOCS_PATH.finditer(text)):
            cited = match.group(1)
            if _OTHER_REPO.search(text[max(match.start() - 60, 0) : match.start()]):
                continue
            if not _cites(path, cited):
                problems.append(f"{where}: cites {cited}, which is not in the repository")
    assert problems == []
