"""What Grafana would send to Prometheus for the bundled dashboards.

`panel_targets` walks every query of every panel; `interpolate` replaces template
variables the way Grafana's Prometheus data source does: a multi-value or include-all
variable becomes a regex alternation of regex-escaped values, a single-value variable
is inserted as it is. `label_values_query` turns a `label_values(selector, label)`
variable query into the label-values API call Grafana makes for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

# Characters Grafana escapes in multi-value variables (prometheusSpecialRegexEscape).
_REGEX_SPECIAL: Final = re.compile(r"([\\^$*+?.()|{}\[\]])")
_VARIABLE: Final = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES: Final = re.compile(r"label_values\((.*),\s*(\w+)\)", re.DOTALL)


@dataclass(frozen=True)
class PanelTarget:
    dashboard: str  # uid
    panel_id: int
    panel_title: str
    ref_id: str
    expr: str
    instant: bool


def panels(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def panel_targets(board: Mapping[str, Any]) -> Iterator[PanelTarget]:
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield PanelTarget(
                dashboard=board["uid"],
                panel_id=panel["id"],
                panel_title=panel["title"],
                ref_id=target["refId"],
                expr=target["expr"],
                instant=bool(target.get("instant")) and not target.get("range"),
            )


def query_variables(board: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [v for v in board["templating"]["list"] if v["type"] == "query"]


def is_multi(variable: Mapping[str, Any]) -> bool:
    return bool(variable.get("multi") or variable.get("includeAll"))


def format_value(values: Sequence[str], multi: bool) -> str:
    if not multi:
        (value,) = values
        return value
    escaped = [_REGEX_SPECIAL.sub(r"\\\\\1", value) for value in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(expr: str, values: Mapping[str, str]) -> str:
    """Replace $name / ${name} / ${name:format}; an unknown variable is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"variable ${name} has no value in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def label_values_query(query: str) -> tuple[str, str]:
    """(series selector, label) of a `label_values(selector, label)` variable query."""
    match = _LABEL_VALUES.fullmatch(query.strip())
    if match is None:
        raise ValueError(f"not a label_values() query: {query!r}")
    return match.group(1).strip(), match.group(2)
