"""A declarative provider definition: its frozen shape, and loading it from YAML.

Loading walks the YAML node tree with exporter.yamlreader's `Reader` (the one strict
YAML reader: limited composer, no alias bombs, no deep nesting) and collects every
problem at once, each as `file:line:col: where:
what`, like the config loader: unknown keys, wrong types, bad expressions, templates
naming unknown fields, id clashes, unit/suffix mismatches. Nothing here runs a vendor
answer; exporter.providers.declarative.provider does that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

import jmespath.exceptions
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from exporter.model import Reason, is_label_name
from exporter.providers.base import template_params
from exporter.providers.declarative.valuespec import (
    SOURCES,
    TIMESTAMP_FORMATS,
    ValueSpec,
    compile_expression,
)
from exporter.yamlreader import DocumentError, Reader
from exporter.yamlreader import is_null as _is_null
from exporter.yamlreader import kind as _kind

NAME: Final = re.compile(r"^[a-z][a-z0-9_]*$")
SNAKE_CASE: Final = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
DEFAULT_MAX_METERS: Final = 100
# A definition may raise its own cap, within reason: every meter is a series per account.
MAX_MAX_METERS: Final = 10_000
DEFAULT_INTERVAL: Final = 300.0
DEFAULT_MIN_INTERVAL: Final = 60.0
METHODS: Final = ("GET", "HEAD", "POST")
# saas_quota_rate_limit_requests `window` values (docs/metrics.md).
WINDOWS: Final = ("second", "minute", "day")
# Units whose meter ids carry them as a suffix (docs/metrics.md, Units).
SUFFIX_UNITS: Final = ("seconds", "bytes")
# Reasons an `errors` rule may give (`internal` is the exporter's own fault, never a vendor's).
RULE_REASONS: Final = tuple(r.value for r in Reason if r is not Reason.INTERNAL)

TOP_KEYS: Final = (
    "base_url",
    "path",
    "method",
    "query",
    "headers",
    "auth",
    "interval",
    "min_interval",
    "errors",
    "info",
    "key_expiry",
    "key_active",
    "rate_limits",
    "rate_limit_headers",
    "meters",
    "max_meters",
    "docs_url",
)
METER_KEYS: Final = (
    "id",
    "unit",
    "scale",
    "used",
    "limit",
    "remaining",
    "reset",
    "period_start",
    "unlimited_values",
    "unlimited_if",
    "each",
)
AUTH_KEYS: Final = ("header", "prefix", "query", "basic")
ERROR_KEYS: Final = ("status", "body_matches", "reason")
SPEC_KEYS: Final = (*SOURCES, "format")
# Info labels the collector sets itself.
RESERVED_LABELS: Final = ("provider", "account")

_FIELD = re.compile(r"\{([^{}]*)\}")
_PARAM_FIELD = re.compile(r"^params\.[A-Za-z_][A-Za-z0-9_]*$")


class DefinitionError(Exception):
    """Every problem of one or more definitions, each naming file, line and column."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True)
class IdPart:
    """One piece of a templated meter id: literal text, `{key}`, `{index}` or `{EXPR}`."""

    kind: str  # "text" | "key" | "index" | "expr"
    text: str
    spec: ValueSpec | None = None


@dataclass(frozen=True)
class MeterSpec:
    id: str  # as written; a template when `parts` has fields
    parts: tuple[IdPart, ...]
    unit: str
    scale: float = 1.0
    used: ValueSpec | None = None
    limit: ValueSpec | None = None
    remaining: ValueSpec | None = None
    reset: ValueSpec | None = None
    period_start: ValueSpec | None = None
    unlimited_values: tuple[Any, ...] = ()
    unlimited_if: ValueSpec | None = None
    each: ValueSpec | None = None

    @property
    def templated(self) -> bool:
        return any(part.kind != "text" for part in self.parts)

    def specs(self) -> tuple[ValueSpec, ...]:
        found = [
            self.used,
            self.limit,
            self.remaining,
            self.reset,
            self.period_start,
            self.unlimited_if,
            self.each,
        ]
        found += [part.spec for part in self.parts]
        return tuple(s for s in found if s is not None)


@dataclass(frozen=True)
class ErrorRule:
    statuses: tuple[int, ...]  # empty: any non-2xx status
    body_matches: str | None
    reason: Reason
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class Auth:
    header: str = ""
    prefix: str = ""
    query: str = ""
    basic_username: str | None = None


@dataclass(frozen=True)
class Definition:
    """One vendor as its YAML says; equal definitions compare equal."""

    name: str
    base_url: str
    path: str
    auth: Auth
    meters: tuple[MeterSpec, ...]
    method: str = "GET"
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    interval: float = DEFAULT_INTERVAL
    min_interval: float = DEFAULT_MIN_INTERVAL
    errors: tuple[ErrorRule, ...] = ()
    info: tuple[tuple[str, ValueSpec], ...] = ()
    key_expiry: ValueSpec | None = None
    key_active: ValueSpec | None = None
    rate_limits: tuple[tuple[str, ValueSpec], ...] = ()
    rate_limit_headers: bool = False
    max_meters: int = DEFAULT_MAX_METERS
    docs_url: str = ""

    @property
    def params(self) -> tuple[str, ...]:
        """Every `{params.X}` the request templates name, in order of first use."""
        texts = [self.path, *(v for _, v in self.query), *(v for _, v in self.headers)]
        if self.auth.basic_username is not None:
            texts.append(self.auth.basic_username)
        return tuple(dict.fromkeys(name for text in texts for name in template_params(text)))

    def specs(self) -> tuple[ValueSpec, ...]:
        found: list[ValueSpec | None] = [self.key_expiry, self.key_active]
        found += [spec for _, spec in self.info]
        found += [spec for _, spec in self.rate_limits]
        for meter in self.meters:
            found += meter.specs()
        return tuple(s for s in found if s is not None)

    @property
    def needs_body(self) -> bool:
        """Whether any value spec reads the JSON body (else headers or constants only)."""
        return any(spec.reads_body for spec in self.specs())


# --- loading ---------------------------------------------------------------------------


def load_text(text: str, name: str, source: str) -> Definition:
    """A definition file: its top level is one definition. DefinitionError lists all."""
    loader = Loader(source)
    try:
        root = loader.compose(text)
    except DocumentError as exc:
        label = {"limit": "YAML", "syntax": "YAML syntax error:", "error": "YAML error:"}
        raise DefinitionError([f"{exc.where}: {label[exc.kind]} {exc.message}"]) from None
    if root is None:
        raise DefinitionError([f"{source}: the definition file is empty"])
    definition = loader.definition(name, root, "")
    if loader.problems or definition is None:
        raise DefinitionError(loader.texts())
    return definition


def load_node(
    name: str, node: Node, source: str, where: str
) -> tuple[Definition | None, list[str]]:
    """A definition inside another YAML document (the config's `providers:` map)."""
    loader = Loader(source)
    definition = loader.definition(name, node, where)
    return (None if loader.problems else definition), loader.texts()


class Loader(Reader):
    """One pass over a definition's node tree, collecting problems instead of stopping.

    The generic walk (mappings, durations, positions, document order) is
    exporter/yamlreader.py's `Reader`; what is definition-specific stays here.
    """

    # interval and min_interval: a poll a second is the least a definition may ask.
    min_duration = 1.0

    def problem(self, node: Node | None, where: str, message: str, column_offset: int = 0) -> None:
        """`column_offset`: columns right of the node's mark (a place inside a string)."""
        if node is None or not column_offset:
            super().problem(node, where, message)
            return
        line, column = node.start_mark.line, node.start_mark.column + column_offset
        position = f"{self.source}:{line + 1}:{column + 1}: "
        self.problems.append((line, column, f"{position}{where + ': ' if where else ''}{message}"))

    # --- the definition --------------------------------------------------------------

    def definition(self, name: str, node: Node, where: str) -> Definition | None:
        before = len(self.problems)
        if not NAME.match(name):
            self.problem(node, where, f"invalid provider name {name!r}: use [a-z][a-z0-9_]*")
        top = self.mapping(node, where, TOP_KEYS)
        if top is None:
            return None
        at = _joiner(where)
        base_url = self.string(top.get("base_url"), at("base_url"), node, required=True)
        if base_url is not None and not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", base_url):
            self.problem(
                top["base_url"], at("base_url"), "need http:// or https://, a host, no query"
            )
        path = self.string(top.get("path"), at("path"), node) or ""
        if path and not path.startswith("/"):
            self.problem(top["path"], at("path"), "must start with '/'")
        self.request_template(top.get("path"), path, at("path"))
        method = (self.string(top.get("method"), at("method"), node) or "GET").upper()
        if method not in METHODS:
            self.problem(top["method"], at("method"), f"use one of {', '.join(METHODS)}")
        query = self.string_map(top.get("query"), at("query"))
        headers = self.string_map(top.get("headers"), at("headers"))
        auth = self.auth(top.get("auth"), at("auth"), node)
        interval = self.duration(top.get("interval"), at("interval"))
        min_interval = self.duration(top.get("min_interval"), at("min_interval"))
        interval = interval or DEFAULT_INTERVAL
        min_interval = min_interval or DEFAULT_MIN_INTERVAL
        if min_interval > interval and "min_interval" in top:
            self.problem(top["min_interval"], at("min_interval"), "is longer than the interval")
        errors = self.errors(top.get("errors"), at("errors"))
        info = self.info(top.get("info"), at("info"))
        key_expiry = self.spec(top.get("key_expiry"), at("key_expiry"), timestamp=True)
        key_active = self.spec(top.get("key_active"), at("key_active"))
        rate_limits = self.rate_limits(top.get("rate_limits"), at("rate_limits"))
        rate_limit_headers = self.boolean(top.get("rate_limit_headers"), at("rate_limit_headers"))
        max_meters = self.integer(top.get("max_meters"), at("max_meters"), DEFAULT_MAX_METERS)
        docs_url = self.string(top.get("docs_url"), at("docs_url"), node) or ""
        meters = self.meters(top.get("meters"), at("meters"), node, rate_limit_headers)
        if len(self.problems) > before or base_url is None or auth is None:
            return None
        return Definition(
            name=name,
            base_url=base_url.rstrip("/"),
            path=path.rstrip("/") if path != "/" else path,
            auth=auth,
            meters=meters,
            method=method,
            query=query,
            headers=headers,
            interval=interval,
            min_interval=min_interval,
            errors=errors,
            info=info,
            key_expiry=key_expiry,
            key_active=key_active,
            rate_limits=rate_limits,
            rate_limit_headers=rate_limit_headers,
            max_meters=max_meters,
            docs_url=docs_url,
        )

    def auth(self, node: Node | None, where: str, parent: Node) -> Auth | None:
        if node is None:
            self.problem(parent, where, "is required: header, query or basic")
            return None
        fields = self.mapping(node, where, AUTH_KEYS)
        if fields is None:
            return None
        at = _joiner(where)
        kinds = [k for k in ("header", "query", "basic") if k in fields]
        if len(kinds) != 1:
            self.problem(node, where, "set exactly one of header, query and basic")
            return None
        if "prefix" in fields and kinds != ["header"]:
            self.problem(fields["prefix"], at("prefix"), "only goes with header")
        kind = kinds[0]
        if kind == "header":
            name = self.string(fields["header"], at("header"), node)
            if name is not None and not re.match(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$", name):
                self.problem(fields["header"], at("header"), "not a valid header name")
            prefix = self.string(fields.get("prefix"), at("prefix"), node, allow_empty=True)
            return Auth(header=name or "", prefix=prefix or "")
        if kind == "query":
            name = self.string(fields["query"], at("query"), node)
            return Auth(query=name or "")
        basic = self.mapping(fields["basic"], at("basic"), ("username",))
        if basic is None:
            return None
        username = self.string(basic.get("username"), at("basic.username"), node, required=True)
        self.request_template(basic.get("username"), username or "", at("basic.username"))
        return Auth(basic_username=username or "")

    def errors(self, node: Node | None, where: str) -> tuple[ErrorRule, ...]:
        if node is None or _is_null(node):
            return ()
        if not isinstance(node, SequenceNode):
            self.problem(node, where, f"expected a list of rules, got {_kind(node)}")
            return ()
        rules: list[ErrorRule] = []
        for index, item in enumerate(node.value):
            at = f"{where}[{index}]"
            fields = self.mapping(item, at, ERROR_KEYS)
            if fields is None:
                continue
            statuses: tuple[int, ...] = ()
            if "status" in fields:
                status_node = fields["status"]
                items = (
                    status_node.value if isinstance(status_node, SequenceNode) else [status_node]
                )
                parsed = [self.integer(n, f"{at}.status", None) for n in items]
                if any(s is not None and not 100 <= s <= 599 for s in parsed):
                    self.problem(status_node, f"{at}.status", "an HTTP status is 100-599")
                statuses = tuple(s for s in parsed if s is not None)
            pattern = None
            text = self.string(fields.get("body_matches"), f"{at}.body_matches", item)
            if text is not None:
                try:
                    pattern = re.compile(text)
                except re.error as exc:
                    self.problem(fields["body_matches"], f"{at}.body_matches", f"bad regex: {exc}")
            reason = self.string(fields.get("reason"), f"{at}.reason", item, required=True)
            if reason is not None and reason not in RULE_REASONS:
                self.problem(
                    fields["reason"], f"{at}.reason", f"use one of {', '.join(RULE_REASONS)}"
                )
                reason = None
            if reason is not None:
                rules.append(ErrorRule(statuses, text, Reason(reason), pattern))
        return tuple(rules)

    def info(self, node: Node | None, where: str) -> tuple[tuple[str, ValueSpec], ...]:
        result: list[tuple[str, ValueSpec]] = []
        for key_node, label, value_node in self.entries(node, where):
            if not is_label_name(label) or label in RESERVED_LABELS:
                self.problem(key_node, f"{where}.{label}", "not a usable label name")
                continue
            spec = self.spec(value_node, f"{where}.{label}")
            if spec is not None:
                result.append((label, spec))
        return tuple(result)

    def rate_limits(self, node: Node | None, where: str) -> tuple[tuple[str, ValueSpec], ...]:
        result: list[tuple[str, ValueSpec]] = []
        for key_node, window, value_node in self.entries(node, where):
            if window not in WINDOWS:
                self.problem(key_node, f"{where}.{window}", f"use one of {', '.join(WINDOWS)}")
                continue
            spec = self.spec(value_node, f"{where}.{window}")
            if spec is not None:
                result.append((window, spec))
        return tuple(result)

    def meters(
        self, node: Node | None, where: str, parent: Node, rate_limit_headers: bool
    ) -> tuple[MeterSpec, ...]:
        if node is None or _is_null(node):
            if not rate_limit_headers:
                self.problem(parent, where, "is required (or rate_limit_headers: true)")
            return ()
        if not isinstance(node, SequenceNode):
            self.problem(node, where, f"expected a list of meters, got {_kind(node)}")
            return ()
        result: list[MeterSpec] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(node.value):
            meter = self.meter(item, f"{where}[{index}]")
            if meter is None:
                continue
            if not meter.templated:
                if meter.id in seen:
                    self.problem(
                        item,
                        f"{where}[{index}].id",
                        f"meter id {meter.id!r} is also meters[{seen[meter.id]}]'s",
                    )
                    continue
                if rate_limit_headers and meter.id.startswith("ratelimit"):
                    self.problem(
                        item, f"{where}[{index}].id", "ratelimit* ids are the rate-limit headers'"
                    )
                seen[meter.id] = index
            result.append(meter)
        return tuple(result)

    def meter(self, node: Node, where: str) -> MeterSpec | None:
        fields = self.mapping(node, where, METER_KEYS)
        if fields is None:
            return None
        before = len(self.problems)
        at = _joiner(where)
        id_text = self.string(fields.get("id"), at("id"), node, required=True)
        unit = self.string(fields.get("unit"), at("unit"), node, required=True)
        if unit is not None and not SNAKE_CASE.match(unit):
            self.problem(fields["unit"], at("unit"), "a unit is snake_case (seconds, credits...)")
        each = self.spec(fields.get("each"), at("each"), expression_only=True)
        parts: tuple[IdPart, ...] = ()
        if id_text is not None:
            parts = self.id_template(fields["id"], id_text, at("id"), each is not None)
            templated = _FIELD.search(id_text) is not None
            if not templated and not SNAKE_CASE.match(id_text):
                self.problem(fields["id"], at("id"), "a meter id is snake_case, e.g. api_credits")
            elif unit is not None:
                self.suffix(fields["id"], at("id"), id_text, unit, templated)
        scale = self.scale(fields.get("scale"), at("scale"))
        specs = {
            name: self.spec(fields.get(name), at(name), timestamp=name in ("reset", "period_start"))
            for name in ("used", "limit", "remaining", "reset", "period_start")
        }
        if not any(n in fields for n in ("used", "limit", "remaining", "unlimited_if")):
            self.problem(node, where, "needs at least one of used, limit and remaining")
        unlimited_values = self.unlimited_values(
            fields.get("unlimited_values"), at("unlimited_values")
        )
        unlimited_if = self.spec(fields.get("unlimited_if"), at("unlimited_if"))
        if len(self.problems) > before or id_text is None or unit is None:
            return None
        return MeterSpec(
            id=id_text,
            parts=parts,
            unit=unit,
            scale=scale,
            unlimited_values=unlimited_values,
            unlimited_if=unlimited_if,
            each=each,
            **specs,
        )

    def suffix(self, node: Node, where: str, id_text: str, unit: str, templated: bool) -> None:
        """docs/metrics.md, Units: a seconds/bytes meter's id ends so, and only then."""
        for suffix_unit in SUFFIX_UNITS:
            ends = id_text.endswith(f"_{suffix_unit}")
            if unit == suffix_unit and not ends and not templated:
                self.problem(
                    node, where, f"unit {unit}: the id must end in _{unit} ({id_text}_{unit})"
                )
            if ends and unit != suffix_unit:
                self.problem(
                    node, where, f"an id ending in _{suffix_unit} needs unit {suffix_unit}"
                )

    def id_template(self, node: Node, text: str, where: str, in_each: bool) -> tuple[IdPart, ...]:
        parts: list[IdPart] = []
        pos = 0
        for match in _FIELD.finditer(text):
            if match.start() > pos:
                parts.append(IdPart("text", text[pos : match.start()]))
            pos = match.end()
            inner = match.group(1).strip()
            if not in_each:
                self.problem(node, where, f"{{{inner}}}: an id template needs `each`")
                continue
            if inner in ("key", "index"):
                parts.append(IdPart(inner, inner))
                continue
            spec = self.expression(node, inner, where, _column(node) + match.start() + 1)
            if spec is not None:
                parts.append(IdPart("expr", inner, spec))
        if pos < len(text):
            parts.append(IdPart("text", text[pos:]))
        rest = _FIELD.sub("", text)
        if "{" in rest or "}" in rest:
            self.problem(node, where, "unbalanced { or } in the id")
        return tuple(parts)

    def request_template(self, node: Node | None, text: str, where: str) -> None:
        """`{params.X}` and `{account}` only: anything else in braces is a mistake."""
        for match in _FIELD.finditer(text):
            inner = match.group(1)
            if inner != "account" and not _PARAM_FIELD.match(inner):
                self.problem(
                    node,
                    where,
                    f"{{{inner}}}: a template names {{params.NAME}} or {{account}}",
                    column_offset=_quote_offset(node) + match.start(),
                )

    # --- value specs -----------------------------------------------------------------

    def spec(
        self,
        node: Node | None,
        where: str,
        *,
        timestamp: bool = False,
        expression_only: bool = False,
    ) -> ValueSpec | None:
        if node is None or _is_null(node):
            return None
        if isinstance(node, ScalarNode):
            if node.tag != "tag:yaml.org,2002:str":
                self.problem(node, where, "an expression is a string; a constant is {value: X}")
                return None
            return self.expression(
                node, str(node.value), where, _quote_offset(node) + _column(node)
            )
        if expression_only:
            self.problem(node, where, "expected an expression (a string)")
            return None
        fields = self.mapping(node, where, SPEC_KEYS)
        if fields is None:
            return None
        sources = [k for k in SOURCES if k in fields]
        if len(sources) != 1:
            self.problem(node, where, f"set exactly one of {', '.join(SOURCES)}")
            return None
        fmt = "auto"
        if "format" in fields:
            fmt_text = self.string(fields["format"], f"{where}.format", node)
            if not timestamp:
                self.problem(fields["format"], f"{where}.format", "format is for timestamps only")
            elif fmt_text not in TIMESTAMP_FORMATS:
                self.problem(
                    fields["format"],
                    f"{where}.format",
                    f"use one of {', '.join(TIMESTAMP_FORMATS)}",
                )
            else:
                fmt = fmt_text
        source = sources[0]
        value_node = fields[source]
        if source == "value":
            constant = self.constant(value_node, f"{where}.value")
            return ValueSpec("value", constant=constant, format=fmt)
        text = self.string(value_node, f"{where}.{source}", node)
        if text is None:
            return None
        if source == "header":
            return ValueSpec("header", text.strip().lower(), format=fmt)
        spec = self.expression(
            value_node, text, f"{where}.{source}", _quote_offset(value_node) + _column(value_node)
        )
        if spec is None:
            return None
        return ValueSpec(source, spec.text, format=fmt, compiled=spec.compiled)

    def expression(self, node: Node, text: str, where: str, column: int) -> ValueSpec | None:
        try:
            compiled = compile_expression(text)
        except jmespath.exceptions.ParseError as exc:
            offset = exc.lex_position if isinstance(exc.lex_position, int) else 0
            message = str(getattr(exc, "msg", "") or "invalid expression").split("\n")[0]
            self.problem(
                node,
                where,
                f"bad JMESPath expression {text!r}: {message}",
                column_offset=column - _column(node) + offset,
            )
            return None
        except (jmespath.exceptions.JMESPathError, ValueError, RecursionError) as exc:
            self.problem(node, where, f"bad JMESPath expression {text!r}: {exc}")
            return None
        return ValueSpec("path", text, compiled=compiled)

    def constant(self, node: Node, where: str) -> Any:
        if not isinstance(node, ScalarNode):
            self.problem(node, where, "a constant is a number, string, boolean or null")
            return None
        return _scalar(node)

    def unlimited_values(self, node: Node | None, where: str) -> tuple[Any, ...]:
        if node is None or _is_null(node):
            return ()
        if not isinstance(node, SequenceNode):
            self.problem(node, where, f"expected a list of values, got {_kind(node)}")
            return ()
        values = []
        for item in node.value:
            if not isinstance(item, ScalarNode):
                self.problem(item, where, "each entry is a number, string or null")
                continue
            values.append(_scalar(item))
        return tuple(values)

    # --- scalars ---------------------------------------------------------------------

    def entries(self, node: Node | None, where: str) -> list[tuple[Node, str, Node]]:
        """(key node, key, value node) of a string-keyed mapping; [] when absent."""
        if node is None or _is_null(node):
            return []
        if not isinstance(node, MappingNode):
            self.problem(node, where, f"expected a mapping, got {_kind(node)}")
            return []
        result: list[tuple[Node, str, Node]] = []
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problem(key_node, where, "mapping keys must be plain strings")
                continue
            key = str(key_node.value)
            if key in seen:
                self.problem(key_node, f"{where}.{key}", "duplicate key")
                continue
            seen.add(key)
            result.append((key_node, key, value_node))
        return result

    def string_map(self, node: Node | None, where: str) -> tuple[tuple[str, str], ...]:
        result = []
        for _, key, value_node in self.entries(node, where):
            value = self.string(value_node, f"{where}.{key}", None, allow_empty=True)
            if value is not None:
                self.request_template(value_node, value, f"{where}.{key}")
                result.append((key, value))
        return tuple(result)

    def string(
        self,
        node: Node | None,
        where: str,
        parent: Node | None,
        *,
        required: bool = False,
        secret: bool = False,
        what: str = "a string",
        allow_empty: bool = False,
    ) -> str | None:
        """As `Reader.string`, but `key:` with nothing is "expected a string, got
        nothing" (or "" with `allow_empty`: a header or prefix may be empty)."""
        if node is None:
            if required:
                self.problem(parent, where, "is required")
            return None
        if not isinstance(node, ScalarNode) or (_is_null(node) and not allow_empty):
            self.problem(node, where, f"expected {what}, got {_kind(node)}")
            return None
        if _is_null(node):
            return ""
        return str(node.value)

    def boolean(self, node: Node | None, where: str) -> bool:
        if node is None:
            return False
        if not isinstance(node, ScalarNode) or node.tag != "tag:yaml.org,2002:bool":
            self.problem(node, where, f"expected true or false, got {_kind(node)}")
            return False
        return bool(_scalar(node))

    def integer(self, node: Node | None, where: str, default: int | None) -> Any:
        if node is None:
            return default
        if not isinstance(node, ScalarNode) or node.tag != "tag:yaml.org,2002:int":
            self.problem(node, where, f"expected a whole number, got {_kind(node)}")
            return default
        value = int(_scalar(node))
        if where.endswith("max_meters") and not 1 <= value <= MAX_MAX_METERS:
            self.problem(node, where, f"must be 1-{MAX_MAX_METERS}")
            return default
        return value

    def scale(self, node: Node | None, where: str) -> float:
        if node is None:
            return 1.0
        value = _scalar(node) if isinstance(node, ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e15:
            self.problem(node, where, "expected a positive number (60 turns minutes into seconds)")
            return 1.0
        return float(value)


def _joiner(where: str) -> Any:
    return lambda key: f"{where}.{key}" if where else key


def _column(node: Node) -> int:
    return int(node.start_mark.column)


def _quote_offset(node: Node | None) -> int:
    """1 for a quoted scalar: its text starts one column after its mark."""
    return 1 if isinstance(node, ScalarNode) and node.style in ("'", '"') else 0


def _scalar(node: ScalarNode) -> Any:
    """A scalar as YAML's safe constructor reads it (int, float, bool, null or str)."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError:
        return str(node.value)
    finally:
        loader.dispose()
