"""Loading and validating the YAML config file (docs/configuration.md).

Strict like blackbox_exporter: unknown keys, duplicate keys, wrong types, unknown
providers, bad durations and duplicate accounts are all errors, and all of them are
reported together, each with file, line, column and a path such as
`accounts[2].interval`. Values of `api_key` are never echoed, and YAML syntax errors
are reported from their position alone because PyYAML's own message quotes the line.
"""

from __future__ import annotations

import glob
import itertools
import math
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import httpx
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from exporter.durations import format_duration
from exporter.model import NO_ALERT_POLICY, NO_ALERT_SETTINGS, AlertPolicy, AlertSettings
from exporter.providers import PROVIDERS
from exporter.providers.base import Provider, Request
from exporter.providers.declarative import DefinitionError, DefinitionParser, build_provider
from exporter.providers.declarative import load_text as load_definition
from exporter.providers.declarative.schema import Loader as DefinitionLoader
from exporter.redaction import REDACTOR, Secret
from exporter.yamlreader import (
    MAX_CONFIG_BYTES,
    MAX_KEY_FILE_BYTES,
    MAX_SMALL_CONFIG_BYTES,
    DocumentError,
    Fields,
    FileReadError,
    Reader,
    read_limited,
)
from exporter.yamlreader import is_null as _is_null
from exporter.yamlreader import kind as _kind

DEFAULT_INTERVAL: Final = 300.0
DEFAULT_TIMEOUT: Final = 10.0
MIN_INTERVAL: Final = 1.0
STALENESS_FACTOR: Final = 3
# Polls in flight at once, over every provider (global.concurrency). 64 in flight at
# 200 ms a poll is 320 polls/s: a first round of 10,000 accounts in about 31 s.
DEFAULT_CONCURRENCY: Final = 64
# The most either concurrency key accepts: past it the bound protects nothing (one
# process cannot usefully hold more connections open than this).
MAX_CONCURRENCY: Final = 1024

_ACCOUNT_NAME = re.compile(r"^[a-zA-Z0-9_.-]+$")
_ENV_REF = re.compile(r"\$\$|\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# `$NAME` without braces, the whole value (a shell habit; see `_unbraced_reference`).
_UNBRACED_REF = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
# user:password@ in a URL, with or without a scheme (checked before the URL is echoed).
_URL_USERINFO = re.compile(r"^(?:[^/?#]*://)?[^/?#]*@")
_GLOBAL_KEYS: Final = (
    "interval",
    "timeout",
    "max_staleness",
    "concurrency",
    "provider_concurrency",
    "alerts",
)
_ACCOUNT_KEYS: Final = (
    "provider",
    "account",
    "api_key",
    "api_key_file",
    "base_url",
    "interval",
    "timeout",
    "max_staleness",
    "params",
    "alerts",
)
# `alerts:` under `global:` and under an account; `meters:` only under an account.
_ALERT_KEYS: Final = ("warning", "critical", "forecast", "forecast_horizon")
_ACCOUNT_ALERT_KEYS: Final = (*_ALERT_KEYS, "meters")
_TOP_KEYS: Final = ("global", "accounts", "providers", "provider_files")
# `provider_files:` reads at most this many definition files, all patterns together: a
# glob that matches a whole tree by mistake is an error, not a reload that never ends.
MAX_PROVIDER_FILES: Final = 100
_DEFINITION_SUFFIXES: Final = (".yaml", ".yml")
_BOOL_TAG: Final = "tag:yaml.org,2002:bool"
_STR_TAG: Final = "tag:yaml.org,2002:str"
_INT_TAG: Final = "tag:yaml.org,2002:int"
_FLOAT_TAG: Final = "tag:yaml.org,2002:float"


@dataclass(frozen=True)
class AccountConfig:
    """One API key at one vendor, with its schedule.

    `adapter` is the `Provider` the loader resolved `provider` to, once, in the
    registry it was given; nothing after the load looks a vendor up by name. It takes
    part in equality, so an account compares equal across two loads exactly when its
    settings and its provider are unchanged (the poller keeps its state then).
    """

    provider: str
    account: str
    api_key: Secret = field(repr=False)
    interval: float
    timeout: float
    max_staleness: float
    base_url: str | None = None
    api_key_file: str | None = None
    # `{params.X}` values for a declarative provider's request templates.
    params: tuple[tuple[str, str], ...] = ()
    # `alerts:` of `global:`, of this account and of its meters (see `alert_policy`).
    alerts: AlertPolicy = NO_ALERT_POLICY
    adapter: Provider = field(kw_only=True, repr=False)

    def __post_init__(self) -> None:
        if self.adapter.name != self.provider:
            raise ValueError(
                f"account {self.account!r}: provider {self.provider!r} is resolved to the"
                f" adapter named {self.adapter.name!r}"
            )

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider, self.account)

    @property
    def url(self) -> str:
        """The endpoint, without the key (a query-parameter key is added by `request`)."""
        return self.adapter.url(self.base_url, dict(self.params), self.account)

    @property
    def alert_policy(self) -> AlertPolicy:
        """The config's alert settings with the adapter's defaults: what /metrics exports."""
        return replace(self.alerts, adapter=self.adapter.alert_defaults)

    def request(self) -> Request:
        """What one poll sends: method, URL and headers, the key included."""
        return self.adapter.request(
            self.api_key.reveal(), self.base_url, dict(self.params), self.account
        )


@dataclass(frozen=True)
class Config:
    accounts: tuple[AccountConfig, ...]
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    max_staleness: float = DEFAULT_INTERVAL * STALENESS_FACTOR
    # Polls in flight at once in all, and at any one provider (None: each provider's
    # own `Provider.max_concurrency`).
    concurrency: int = DEFAULT_CONCURRENCY
    provider_concurrency: int | None = None
    # Accepted but worth a log line (an interval under the vendor's minimum...).
    warnings: tuple[str, ...] = ()
    # api_key_file paths not read (load_config(read_key_files=False)); their keys are "".
    unread_key_files: int = 0


class ConfigError(Exception):
    """Every problem found in one config, each naming where it is."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


def load_config(
    path: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
    *,
    providers: Mapping[str, Provider] = PROVIDERS,
    read_key_files: bool = True,
) -> Config:
    """Read and validate a config file; ConfigError lists every problem at once.

    `providers` is the registry each account's `provider:` is resolved in (the
    built-in adapters unless the caller hands in another). `read_key_files=False`
    checks everything but the `api_key_file` contents, for a config whose key files
    exist only where the service runs (`--config.check --config.skip-key-files`);
    such a config has empty keys and is for checking only.
    """
    source = os.fspath(path)
    try:
        text = read_limited(source, MAX_CONFIG_BYTES).decode("utf-8")
    except FileReadError as exc:
        raise ConfigError([f"{source}: cannot read config file: {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{source}: config file is not UTF-8: {exc.reason}"]) from None
    return parse_config(
        text,
        source=source,
        environ=os.environ if environ is None else environ,
        base_dir=Path(source).resolve().parent,
        providers=providers,
        read_key_files=read_key_files,
    )


def parse_config(
    text: str,
    *,
    source: str = "<config>",
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    providers: Mapping[str, Provider] = PROVIDERS,
    read_key_files: bool = True,
) -> Config:
    loader = _Loader(
        source, os.environ if environ is None else environ, base_dir or Path.cwd(), providers
    )
    loader.read_key_files = read_key_files
    return loader.load(text)


class _Loader(Reader):
    """One pass over the YAML node tree, collecting problems instead of stopping.

    The generic walk (mappings, strings, durations, positions, scrubbing) is
    exporter/yamlreader.py's `Reader`; what is config-specific stays here.
    """

    min_duration = MIN_INTERVAL

    def __init__(
        self,
        source: str,
        environ: Mapping[str, str],
        base_dir: Path,
        providers: Mapping[str, Provider],
    ) -> None:
        super().__init__(source)
        self.environ = environ
        self.base_dir = base_dir
        # The registry every `provider:` is resolved in; the only one this pass reads.
        self.providers = providers
        # `$NAME` values warned about (`_unbraced_reference`): variable names, not keys.
        self.unbraced: set[str] = set()
        self.read_key_files = True
        self.unread_key_files = 0
        # `global.alerts`, which every account's settings fall back on.
        self.fleet_alerts = _AlertBlock(NO_ALERT_SETTINGS, {})
        # User-defined providers whose definition has problems: accounts naming them are
        # not also "unknown provider" (the definition's own problems say what to fix).
        self.broken_providers: set[str] = set()

    # --- reporting ----------------------------------------------------------------

    def error(self) -> ConfigError:
        # Every api_key value written in this document is in self.secrets.
        return ConfigError(self.texts())

    def collect_secrets(self, root: Node) -> None:
        """The api_key values anywhere in the tree (bounded by the YAML node limits)."""
        stack, seen = [root], set()
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, MappingNode):
                for key_node, value_node in node.value:
                    if (
                        isinstance(key_node, ScalarNode)
                        and key_node.value == "api_key"
                        and isinstance(value_node, ScalarNode)
                        and len(str(value_node.value).strip()) >= 4
                    ):
                        self.secrets.add(str(value_node.value).strip())
                    stack.extend((key_node, value_node))
            elif isinstance(node, SequenceNode):
                stack.extend(node.value)

    # --- entry --------------------------------------------------------------------

    def load(self, text: str) -> Config:
        try:
            root = self.compose(text)
        except DocumentError as exc:
            label = {"limit": "YAML", "syntax": "YAML syntax error:", "error": "YAML error:"}
            raise ConfigError([f"{exc.where}: {label[exc.kind]} {exc.message}"]) from None
        if root is not None:
            self.collect_secrets(root)
        if root is None or _is_null(root):
            raise ConfigError([f"{self.source}: config file is empty; it needs 'accounts:'"])
        if not isinstance(root, MappingNode):
            raise ConfigError(
                [
                    f"{self.position(root)}the top level must be a mapping with 'accounts:',"
                    f" got {_kind(root)}"
                ]
            )
        top = self.mapping(root, "", _TOP_KEYS)
        if top is None:
            raise self.error()
        self.definitions(top)

        interval = DEFAULT_INTERVAL
        # None unless set: then each provider's own default interval applies.
        global_interval: float | None = None
        timeout = DEFAULT_TIMEOUT
        staleness: float | None = None
        glob = None
        concurrency: int | None = None
        provider_concurrency: int | None = None
        if "global" in top and not _is_null(top["global"]):  # `global:` alone: all defaults
            glob = self.mapping(top["global"], "global", _GLOBAL_KEYS)
        if glob:
            global_interval = self.duration(glob.get("interval"), "global.interval")
            own_timeout = self.duration(glob.get("timeout"), "global.timeout", minimum=0.001)
            staleness = self.duration(glob.get("max_staleness"), "global.max_staleness")
            interval = global_interval or interval
            timeout = own_timeout or timeout
            concurrency = self.count(glob.get("concurrency"), "global.concurrency")
            provider_concurrency = self.count(
                glob.get("provider_concurrency"), "global.provider_concurrency"
            )
            self.fleet_alerts, _ = self.alerts(glob.get("alerts"), "global.alerts", account=False)
            # Checked once here, not again for every account that inherits them.
            self.schedule(
                glob,
                "global",
                {"interval": global_interval, "timeout": own_timeout, "max_staleness": staleness},
                interval=interval,
                timeout=timeout,
                max_staleness=staleness if staleness is not None else interval * STALENESS_FACTOR,
            )

        accounts: list[AccountConfig] = []
        if "accounts" not in top:
            self.problem(root, "", "missing 'accounts:' (a list of accounts to poll)")
        else:
            accounts = self.accounts(top["accounts"], global_interval, timeout, staleness)
        if not self.problems and "accounts" in top and not accounts:
            self.warning(top["accounts"], "accounts", "no accounts configured; nothing to poll")
        if self.problems:
            raise self.error()
        REDACTOR.register(
            *(a.api_key.reveal() for a in accounts if a.api_key.reveal() not in self.unbraced)
        )
        return Config(
            accounts=tuple(accounts),
            interval=interval,
            timeout=timeout,
            max_staleness=staleness if staleness is not None else interval * STALENESS_FACTOR,
            concurrency=concurrency or DEFAULT_CONCURRENCY,
            provider_concurrency=provider_concurrency,
            warnings=tuple(self.warnings),
            unread_key_files=self.unread_key_files,
        )

    # --- user-defined providers -----------------------------------------------------

    def definitions(self, top: Fields) -> None:
        """`providers:` and `provider_files:` join the registry for this load only.

        Each definition is checked like a shipped one (every problem with its position:
        the config's own for the map, the definition file's for a file). A name the
        registry already has, or one defined twice, is a problem naming both places.
        """
        registry = dict(self.providers)
        # name -> where a user-defined provider was defined, for "defined twice".
        origins: dict[str, str] = {}
        if "providers" in top and not _is_null(top["providers"]):
            self.provider_map(top["providers"], registry, origins)
        if "provider_files" in top and not _is_null(top["provider_files"]):
            self.provider_files(top["provider_files"], registry, origins)
        self.providers = registry

    def provider_map(
        self, node: Node, registry: dict[str, Provider], origins: dict[str, str]
    ) -> None:
        fields = self.mapping(node, "providers", what="a mapping of provider name to definition")
        if fields is None:
            return
        for name, value in fields.items():
            where = f"providers.{name}"
            key_node = fields.key_node(name)
            if self.name_taken(key_node, where, name, f"providers.{name}", registry, origins):
                continue
            loader = DefinitionLoader(self.source)
            definition = loader.definition(name, value, where)
            # Positioned in this file already: they sort among its other problems.
            self.problems.extend(loader.problems)
            if loader.problems or definition is None:
                self.broken_providers.add(name)
                continue
            registry[name] = build_provider(definition)
            origins[name] = f"{self.position(key_node).rstrip(': ')} ({where})"

    def provider_files(
        self, node: Node, registry: dict[str, Provider], origins: dict[str, str]
    ) -> None:
        items = self.sequence(node, "provider_files", what="a list of file patterns")
        read: set[Path] = set()
        for index, item in enumerate(items or []):
            where = f"provider_files[{index}]"
            pattern = self.string(item, where, None)
            if pattern is None:
                continue
            paths = self.matches(item, where, pattern, MAX_PROVIDER_FILES - len(read))
            for path in paths:
                if path.resolve() in read:
                    continue  # two patterns naming one file: read once
                read.add(path.resolve())
                self.provider_file(item, where, path, registry, origins)

    def matches(self, node: Node, where: str, pattern: str, budget: int) -> list[Path]:
        """The files a pattern names (relative to the config's folder), at most `budget`.

        A pattern without `*?[` names one file, which must exist; a glob may match none
        (a warning). `**` is not recursive: one folder level per path segment.
        """
        if not glob.has_magic(pattern):
            return [self.base_dir / pattern]
        found = list(itertools.islice(glob.iglob(pattern, root_dir=self.base_dir), budget + 1))
        if len(found) > budget:
            self.problem(
                node,
                where,
                f"{pattern!r} matches more than the {MAX_PROVIDER_FILES} provider files a"
                " config may read (all patterns together); narrow the pattern",
            )
            return []
        if not found:
            self.warning(node, where, f"{pattern!r} matches no file in {self.base_dir}")
        return sorted(self.base_dir / match for match in found)

    def provider_file(
        self,
        node: Node,
        where: str,
        path: Path,
        registry: dict[str, Provider],
        origins: dict[str, str],
    ) -> None:
        """One definition file: its name is the file's (`acme.yaml` defines `acme`)."""
        suffix = next((s for s in _DEFINITION_SUFFIXES if path.name.endswith(s)), None)
        if suffix is None:
            self.problem(
                node,
                where,
                f"{path}: a provider file is NAME.yaml or NAME.yml (the name is the provider's)",
            )
            return
        name = path.name.removesuffix(suffix)
        if self.name_taken(node, where, name, str(path), registry, origins):
            return
        try:
            text = read_limited(path, MAX_SMALL_CONFIG_BYTES).decode("utf-8")
        except FileReadError as exc:
            self.problem(node, where, f"cannot read provider file {path}: {exc}")
            self.broken_providers.add(name)
            return
        except UnicodeDecodeError:
            self.problem(node, where, f"provider file {path} is not UTF-8 text")
            self.broken_providers.add(name)
            return
        try:
            definition = load_definition(text, name, str(path))
        except DefinitionError as exc:
            # Positioned in their own file; listed where the config names the file, in
            # their own order.
            line, column = node.start_mark.line, node.start_mark.column
            self.problems.extend((line, column, problem) for problem in exc.problems)
            self.broken_providers.add(name)
            return
        registry[name] = build_provider(definition)
        origins[name] = str(path)

    def name_taken(
        self,
        node: Node,
        where: str,
        name: str,
        place: str,
        registry: dict[str, Provider],
        origins: dict[str, str],
    ) -> bool:
        """Whether `name` is already used; a problem naming both places if so."""
        if name in origins or name in self.broken_providers:
            first = origins.get(name, "an earlier definition")
            self.problem(
                node,
                where,
                f"provider {name!r} ({place}) is defined twice: also at {first}; rename one",
            )
            return True
        if name in registry:
            self.problem(
                node,
                where,
                f"provider name {name!r} ({place}) is already taken by"
                f" {_origin(registry[name])}; choose another name",
            )
            return True
        return False

    # --- accounts -----------------------------------------------------------------

    def accounts(
        self,
        node: Node,
        interval: float | None,
        timeout: float,
        staleness: float | None,
    ) -> list[AccountConfig]:
        if _is_null(node):
            return []
        if not isinstance(node, SequenceNode):
            self.problem(node, "accounts", f"expected a list of accounts, got {_kind(node)}")
            return []
        result: list[AccountConfig] = []
        seen: dict[tuple[str, str], int] = {}
        for index, item in enumerate(node.value):
            where = f"accounts[{index}]"
            account = self.account(item, where, interval, timeout, staleness)
            if account is None:
                continue
            if account.key in seen:
                self.problem(
                    item,
                    where,
                    f"duplicate account {account.account!r} for provider {account.provider!r}"
                    f" (first defined at accounts[{seen[account.key]}])",
                )
                continue
            seen[account.key] = index
            result.append(account)
        return result

    def account(
        self,
        node: Node,
        where: str,
        interval: float | None,
        timeout: float,
        staleness: float | None,
    ) -> AccountConfig | None:
        fields = self.mapping(node, where, _ACCOUNT_KEYS)
        if fields is None:
            return None
        before = len(self.problems)

        provider = self.string(fields.get("provider"), f"{where}.provider", node, required=True)
        # Resolved here, once: everything below and after the load uses this object.
        adapter = self.providers.get(provider) if provider is not None else None
        if provider in self.broken_providers:
            provider = None
        elif provider is not None and adapter is None:
            self.problem(
                fields["provider"],
                f"{where}.provider",
                f"unknown provider {provider!r}; valid providers:"
                f" {', '.join(sorted(self.providers))}",
            )
            provider = None

        name = self.string(fields.get("account"), f"{where}.account", node, required=True)
        if name is not None and not _ACCOUNT_NAME.match(name):
            self.problem(
                fields["account"],
                f"{where}.account",
                f"invalid account name {name!r}: use letters, digits, '_', '.' and '-' only",
            )

        key = self.api_key(fields, where, node)
        params = self.params(fields.get("params"), f"{where}.params", adapter, node)
        alerts, meter_alerts = self.alerts(fields.get("alerts"), f"{where}.alerts", account=True)
        base_url = self.base_url(fields.get("base_url"), f"{where}.base_url", adapter)
        own_interval = self.duration(fields.get("interval"), f"{where}.interval")
        own_timeout = self.duration(fields.get("timeout"), f"{where}.timeout", minimum=0.001)
        own_staleness = self.duration(fields.get("max_staleness"), f"{where}.max_staleness")
        vendor_default = adapter.default_interval if adapter else DEFAULT_INTERVAL
        interval = own_interval or interval or vendor_default
        timeout = own_timeout or timeout
        max_staleness = own_staleness or staleness or interval * STALENESS_FACTOR
        self.schedule(
            fields,
            where,
            {"interval": own_interval, "timeout": own_timeout, "max_staleness": own_staleness},
            interval=interval,
            timeout=timeout,
            max_staleness=max_staleness,
        )
        if provider is not None and adapter is not None:
            minimum = adapter.min_interval
            if interval < minimum:
                self.warning(
                    fields.get("interval") or node,
                    f"{where}.interval",
                    f"{format_duration(interval)} is below {provider}'s recommended minimum of"
                    f" {format_duration(minimum)}; accepted, but it spends the vendor's rate limit"
                    " for no fresher data",
                )

        if (
            len(self.problems) > before
            or provider is None
            or adapter is None
            or name is None
            or key is None
        ):
            return None
        key_value, key_file = key
        check = adapter.key_warning
        # An unread key file's "" is no key to judge.
        remark = check(key_value) if check and key_value else None
        if remark:
            self.warning(node, where, remark)
        return AccountConfig(
            provider=provider,
            adapter=adapter,
            account=name,
            api_key=Secret(key_value),
            api_key_file=key_file,
            base_url=base_url,
            interval=interval,
            timeout=timeout,
            max_staleness=max_staleness,
            params=params,
            alerts=AlertPolicy(
                fleet=self.fleet_alerts.settings,
                account=alerts.settings,
                meters=meter_alerts,
            ),
        )

    def schedule(
        self,
        fields: dict[str, Node],
        where: str,
        own: dict[str, float | None],
        *,
        interval: float,
        timeout: float,
        max_staleness: float,
    ) -> None:
        """timeout < interval <= max_staleness, for `global:` and for each account alike.

        `own` holds the durations this block sets (None: not set, or not readable) and
        the keyword values are the effective ones, inherited values filled in. A pair
        is reported only where the block writes one of its two values, at the one it
        writes (the timeout or max_staleness rather than the interval), so a value
        that is merely inherited is reported once, where it is written. A block with an
        unreadable duration is not compared: that value is the one to fix, and a
        comparison with the default standing in for it would be noise.
        """
        if any(key in fields and value is None for key, value in own.items()):
            return
        if timeout >= interval and (own["timeout"] or own["interval"]):
            field_name = "timeout" if own["timeout"] else "interval"
            self.problem(
                fields[field_name],
                f"{where}.{field_name}",
                f"timeout {format_duration(timeout)} must be shorter than the interval"
                f" {format_duration(interval)}",
            )
        if max_staleness < interval and (own["max_staleness"] or own["interval"]):
            field_name = "max_staleness" if own["max_staleness"] else "interval"
            self.problem(
                fields[field_name],
                f"{where}.{field_name}",
                f"max_staleness {format_duration(max_staleness)} is shorter than the interval"
                f" {format_duration(interval)}: values would vanish between polls",
            )

    # --- alerts -------------------------------------------------------------------

    def alerts(
        self, node: Node | None, where: str, *, account: bool
    ) -> tuple[_AlertBlock, tuple[tuple[str, AlertSettings], ...]]:
        """`alerts:` of `global:` or of an account (which may add `meters:`).

        Returns the block's own settings and, for an account, each meter's. Nothing
        set means the layer below decides, down to the alert rules' defaults.
        """
        parents = () if not account else (self.fleet_alerts,)
        empty = _AlertBlock(NO_ALERT_SETTINGS, {})
        if node is None or _is_null(node):
            return empty, ()
        fields = self.mapping(
            node,
            where,
            _ACCOUNT_ALERT_KEYS if account else _ALERT_KEYS,
            handled=() if account else ("meters",),
        )
        if fields is None:
            return empty, ()
        if not account and "meters" in fields:
            self.problem(
                fields.key_node("meters"),
                f"{where}.meters",
                "per-meter settings belong under an account's alerts (meter names are"
                " the vendor's); set warning, critical, forecast or forecast_horizon here",
            )
        block = self.alert_block(fields, where, parents)
        meters: list[tuple[str, AlertSettings]] = []
        meters_node = fields.get("meters") if account else None
        if meters_node is not None and not _is_null(meters_node):
            by_meter = self.mapping(meters_node, f"{where}.meters", what="a mapping of meter names")
            for name, value in (by_meter or {}).items():
                path = f"{where}.meters.{name}"
                if not name.strip():
                    self.problem(value, path, "empty meter name; use the `meter` label's value")
                    continue
                if _is_null(value):
                    continue
                own = self.mapping(value, path, _ALERT_KEYS)
                if own is not None:
                    meters.append((name, self.alert_block(own, path, (block, *parents)).settings))
        return block, tuple(meters)

    def alert_block(
        self, fields: Mapping[str, Node], where: str, parents: tuple[_AlertBlock, ...]
    ) -> _AlertBlock:
        """One layer's warning, critical, forecast and forecast_horizon."""
        forecast = None
        if "forecast" in fields:
            forecast = self.boolean(fields["forecast"], f"{where}.forecast")
        horizon = self.horizon(fields.get("forecast_horizon"), f"{where}.forecast_horizon")
        if forecast is False and horizon is not None:
            self.problem(
                fields["forecast_horizon"],
                f"{where}.forecast_horizon",
                "has no effect with forecast: false in the same block; remove one of them",
            )
        settings = AlertSettings(
            warning=self.ratio(fields.get("warning"), f"{where}.warning", "warning"),
            critical=self.ratio(fields.get("critical"), f"{where}.critical", "critical"),
            forecast=forecast,
            forecast_horizon=horizon,
        )
        written = {
            name: (fields[name], f"{where}.{name}")
            for name in ("warning", "critical")
            if name in fields
        }
        block = _AlertBlock(settings, written)
        self.threshold_order(block, parents)
        return block

    def threshold_order(self, block: _AlertBlock, parents: tuple[_AlertBlock, ...]) -> None:
        """warning <= critical, as the block's values and the inherited ones combine.

        Reported only where the block writes one of the two, at the one it writes (like
        `schedule`), so an inherited pair is reported once, where it is written. A
        block with an unreadable threshold is not compared, and neither is a severity
        switched off: "critical only" is `warning: off`.
        """
        if not block.written:
            return
        if any(getattr(b.settings, name) is None for b in (block, *parents) for name in b.written):
            return
        layers = (block, *parents)
        warning = next((b.settings.warning for b in layers if b.settings.warning is not None), None)
        critical = next(
            (b.settings.critical for b in layers if b.settings.critical is not None), None
        )
        if warning is None or critical is None or math.isinf(warning) or math.isinf(critical):
            return
        if warning > critical:
            node, where = block.written.get("warning") or block.written["critical"]
            self.problem(
                node,
                where,
                f"the warning threshold {warning:g} is above the critical one {critical:g}:"
                " the critical alert would fire first; make warning <= critical",
            )

    def ratio(self, node: Node | None, where: str, severity: str) -> float | None:
        """A used share of the limit (0.8 = 80 %), or `off` / `.inf` for never."""
        if node is None:
            return None
        # YAML 1.1 reads `off` (and `false`, `no`) as false: this severity never fires.
        # A quoted "off" too: Helm's toYaml quotes the string a values file gives it.
        if isinstance(node, ScalarNode) and (
            (node.tag == _BOOL_TAG and str(node.value).lower() in ("off", "false", "no"))
            or (node.tag == _STR_TAG and str(node.value).strip().lower() == "off")
        ):
            return math.inf
        if not (isinstance(node, ScalarNode) and node.tag in (_INT_TAG, _FLOAT_TAG)):
            self.problem(
                node,
                where,
                f"expected a used share of the limit such as 0.8 (for 80 %), or off, got"
                f" {_kind(node)}",
            )
            return None
        value = self.number(node, where)
        if value is None:
            return None
        share = float(value)
        if math.isnan(share) or share <= 0:
            self.problem(
                node,
                where,
                f"{value!r} is not a used share above 0: 0 or less would fire for every meter"
                " with a limit, used or not; write a share such as 0.8, or off to switch the"
                " alert off",
            )
            return None
        if 1 < share < math.inf:
            effect = (
                "; it also switches SaasQuotaExhausted off for the meter"
                if severity == "critical"
                else ""
            )
            self.warning(
                node,
                where,
                f"{share:g} is above 1 (100 % used): the alert fires only on overage{effect};"
                " a share of 80 % is written 0.8, and off switches the alert off; accepted",
            )
        return share

    def horizon(self, node: Node | None, where: str) -> float | None:
        """`forecast_horizon`: a positive duration (`forecast: false` is the way to 0)."""
        seconds = self.duration(node, where, minimum=0.0)
        if seconds == 0:
            self.problem(
                node,
                where,
                "a horizon of 0 would never forecast; write forecast: false to switch the"
                " forecast alerts off",
            )
            return None
        return seconds

    def params(
        self, node: Node | None, where: str, adapter: Provider | None, account: Node
    ) -> tuple[tuple[str, str], ...]:
        """`params:` a mapping of strings, giving every `{params.X}` the provider names."""
        values: dict[str, str] = {}
        if node is not None and not _is_null(node):
            if not isinstance(node, MappingNode):
                self.problem(node, where, f"expected a mapping of strings, got {_kind(node)}")
                return ()
            for key_node, value_node in node.value:
                name = key_node.value if isinstance(key_node, ScalarNode) else None
                if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
                    self.problem(key_node, where, "a param name is [A-Za-z_][A-Za-z0-9_]*")
                    continue
                if name in values:
                    self.problem(key_node, f"{where}.{name}", "duplicate key")
                    continue
                value = self.string(value_node, f"{where}.{name}", node)
                if value is not None:
                    values[name] = value
        if adapter is not None:
            provider = adapter.name
            wanted = adapter.params
            for name in wanted:
                if name not in values:
                    self.problem(
                        node if node is not None else account,
                        where if node is not None else where.removesuffix(".params"),
                        f"provider {provider!r} needs params.{name} (its request uses"
                        f" {{params.{name}}}); add params: {{{name}: ...}}",
                    )
            for name in values:
                if name not in wanted:
                    self.problem(
                        node,
                        f"{where}.{name}",
                        f"provider {provider!r} uses no param {name!r}"
                        + (f"; it uses {', '.join(wanted)}" if wanted else ""),
                    )
        return tuple(sorted(values.items()))

    def api_key(
        self, fields: dict[str, Node], where: str, node: Node
    ) -> tuple[str, str | None] | None:
        has_key, has_file = "api_key" in fields, "api_key_file" in fields
        if has_key and has_file:
            self.problem(node, where, "set exactly one of api_key and api_key_file, not both")
            return None
        if not has_key and not has_file:
            self.problem(node, where, "missing api_key or api_key_file")
            return None
        if has_key:
            value = self.string(fields["api_key"], f"{where}.api_key", node, secret=True)
            if value is not None and not value.strip():
                self.problem(fields["api_key"], f"{where}.api_key", "is empty")
                return None
            if value is None:
                return None
            bad = _header_problem(value.strip())
            if bad:
                self.problem(fields["api_key"], f"{where}.api_key", bad)
                return None
            return value.strip(), None
        file_node = fields["api_key_file"]
        path_text = self.string(file_node, f"{where}.api_key_file", node)
        if path_text is None:
            return None
        path = Path(path_text)
        if not path.is_absolute():
            path = self.base_dir / path
        if not self.read_key_files:
            self.unread_key_files += 1
            return "", str(path)
        try:
            value = read_limited(path, MAX_KEY_FILE_BYTES).decode("utf-8").strip()
        except FileReadError as exc:
            self.problem(file_node, f"{where}.api_key_file", f"cannot read {path}: {exc}")
            return None
        except UnicodeDecodeError:
            self.problem(file_node, f"{where}.api_key_file", f"{path} is not UTF-8 text")
            return None
        if not value:
            self.problem(file_node, f"{where}.api_key_file", f"{path} is empty")
            return None
        if len(value) >= 4:
            self.secrets.add(value)
        bad = _header_problem(value)
        if bad:
            self.problem(file_node, f"{where}.api_key_file", f"the key in {path} {bad}")
            return None
        return value, str(path)

    def base_url(self, node: Node | None, where: str, adapter: Provider | None) -> str | None:
        text = self.string(node, where, None)
        if text is None:
            return None
        if _URL_USERINFO.match(text):
            # Before anything echoes the URL: credentials in a URL end up in logs.
            self.problem(node, where, "invalid URL: user or password in a URL is not allowed")
            return None
        # Before urlsplit, which silently drops a TAB or newline that httpx then rejects.
        for position, char in enumerate(text, 1):
            if char.isspace() or unicodedata.category(char)[0] == "C":
                self.problem(
                    node,
                    where,
                    f"invalid URL: {_describe(char)} at position {position};"
                    " a URL has no spaces or control characters",
                )
                return None
        try:
            parts = urlsplit(text)
        except ValueError as exc:
            self.problem(node, where, f"invalid URL {text!r}: {exc}")
            return None
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            self.problem(node, where, f"invalid URL {text!r}: the port must be a number 0-65535")
            return None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problem(node, where, f"invalid URL {text!r}: need http:// or https:// and a host")
            return None
        if parts.query or parts.fragment:
            self.problem(node, where, f"invalid URL {text!r}: no query or fragment allowed")
            return None
        if parts.username or parts.password:
            # Credentials in a URL end up in logs; keys belong in api_key.
            self.problem(node, where, "invalid URL: user or password in a URL is not allowed")
            return None
        base_url = text.rstrip("/")
        if adapter is not None:
            # The URL the poller will request, checked by the client that will request it.
            try:
                httpx.URL(adapter.url(base_url))
            except (httpx.InvalidURL, ValueError) as exc:
                self.problem(node, where, f"invalid URL {text!r}: {exc}")
                return None
        return base_url

    # --- scalars ------------------------------------------------------------------

    def count(self, node: Node | None, where: str) -> int | None:
        """A whole number from 1 to MAX_CONCURRENCY (the concurrency keys)."""
        if node is None:
            return None
        expected = f"expected a whole number from 1 to {MAX_CONCURRENCY}"
        if not isinstance(node, ScalarNode) or _is_null(node):
            self.problem(node, where, f"{expected}, got {_kind(node)}")
            return None
        text = node.value.strip()
        if not text.isascii() or not text.isdigit():
            shown = text if len(text) <= 40 else text[:40] + "..."
            self.problem(node, where, f"{expected}, got {shown!r}")
            return None
        value = int(text)
        if not 1 <= value <= MAX_CONCURRENCY:
            self.problem(node, where, f"{expected}, got {value}")
            return None
        return value

    def expand(self, node: ScalarNode, where: str, *, secret: bool) -> str:
        """Expand ${VAR} from the environment; `$$` is a literal `$`.

        A problem never quotes what is inside a `${...}` that is not a variable name,
        and in a secret field it names an unset variable only when the name looks
        like one (`_conventional_name`): a key pasted inside `${...}` by mistake is
        a valid name more often than not (`${sk_live_abc123}`). What is not shown
        in a secret field is registered with REDACTOR, so it is scrubbed everywhere
        else too (logs, `/`, the reload answer). file:line:col still says where.
        """
        reported: set[str] = set()

        def report(message: str) -> None:
            # `${a-b} ${c-d}` is one thing to fix, not two identical lines.
            if message not in reported:
                reported.add(message)
                self.problem(node, where, message)

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name = match.group(1)
            if not name.strip():
                report("empty environment variable reference ${}: put a variable name inside")
                return ""
            if not _ENV_NAME.match(name):
                if secret:
                    REDACTOR.register(name.strip())
                    report(f"invalid environment variable reference ${{...}}{_PASTED_KEY}")
                else:
                    report(
                        "invalid environment variable reference ${...} (contents not shown):"
                        " a variable name has only letters, digits and '_' and does not"
                        " start with a digit"
                    )
                return ""
            value = self.environ.get(name)
            if value is None:
                if secret and not _conventional_name(name):
                    REDACTOR.register(name)
                    report(
                        "the environment variable in ${...} is not set (its name is not"
                        f" shown: it does not look like a variable name){_PASTED_KEY}"
                    )
                else:
                    report(f"environment variable {name} is not set")
                return ""
            if not value.strip():
                # Set, so the name is a variable's and safe to show; an empty key or
                # URL would otherwise fail later as "is empty" with no variable named.
                report(
                    f"environment variable {name} is set but empty"
                    f"{' (only whitespace)' if value else ''}: give it a value, or unset"
                    " it and fix the config"
                )
                return ""
            if secret:
                REDACTOR.register(value)
            return value

        text = str(node.value)
        self._unbraced_reference(node, where, text)
        return _ENV_REF.sub(substitute, text)

    def _unbraced_reference(self, node: ScalarNode, where: str, text: str) -> None:
        """Warn about `$NAME` written for `${NAME}`: it is used as written, `$` and all.

        Only a warning (a key may start with `$`), and only when the whole value is
        `$` and a variable name that is set in the environment or looks like one
        (`_conventional_name`: upper case, digits, `_`), so a key like `$k3y-9f...`
        is never quoted. Such a value is a name, not a key: it is not registered for
        scrubbing (`unbraced`), so the warning stays readable in the log.
        """
        match = _UNBRACED_REF.fullmatch(text.strip())
        if match is None:
            return
        name = match.group(1)
        if name not in self.environ and not _conventional_name(name):
            return
        self.unbraced.add(text.strip())
        is_set = "is set" if name in self.environ else "is not set"
        self.warning(
            node,
            where,
            f"${name} is used literally, dollar sign included; to read the environment"
            f" variable {name} (which {is_set}) write ${{{name}}}",
        )


@dataclass(frozen=True)
class _AlertBlock:
    """One `alerts:` layer as read, with the nodes of the thresholds it writes."""

    settings: AlertSettings
    # "warning" / "critical" -> (node, path), for problems about their order.
    written: dict[str, tuple[Node, str]]


def _origin(provider: Provider) -> str:
    """Where a provider of the registry the loader was handed comes from."""
    if isinstance(provider.parse, DefinitionParser):
        return f"the shipped definition exporter/providers/{provider.name}.yaml"
    return f"the built-in adapter exporter/providers/{provider.name}.py"


# What the user most likely did, and the two ways out (api_key is the secret field).
_PASTED_KEY: Final = (
    "; did you paste the key itself inside ${...}? write `api_key: ${ENV_VAR_NAME}`"
    " or the key without ${}"
)
# Upper case, digits and '_', at most 64 characters, and no run of more than 16
# characters without an '_': API_KEY, PICTORY_TOKEN_PROD. Anything else in a secret
# field might be the key itself (sk_live_4f2a..., AKIAIOSFODNN7EXAMPLE), so it is
# not echoed.
_CONVENTIONAL_NAME: Final = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
_NAME_PART_CHARS: Final = 16


def _conventional_name(name: str) -> bool:
    return _CONVENTIONAL_NAME.fullmatch(name) is not None and all(
        len(part) <= _NAME_PART_CHARS for part in name.split("_")
    )


def _describe(char: str) -> str:
    """U+200B (ZERO WIDTH SPACE): the character named, never shown."""
    name = unicodedata.name(char, "") or _CONTROL_NAMES.get(ord(char), "a control character")
    return f"U+{ord(char):04X} ({name})"


_CONTROL_NAMES: Final = {
    0x00: "NUL",
    0x09: "TAB",
    0x0A: "LINE FEED",
    0x0D: "CARRIAGE RETURN",
    0x1B: "ESCAPE",
    0x7F: "DELETE",
    0x85: "NEXT LINE",
}


def _header_problem(key: str) -> str | None:
    """Why `key` cannot be sent in an HTTP header, or None; never quotes the key.

    Header values are ASCII text (httpx encodes them as ASCII, h11 rejects control
    characters); `strip()` keeps U+200B and the like, which a copy from a web page
    brings along, and which would otherwise fail every poll instead of the load.
    """
    for position, char in enumerate(key, 1):
        if not " " <= char <= "~":
            return (
                f"contains {_describe(char)} at position {position}; an API key is printable"
                " ASCII, so this is probably a copy-paste leftover: type the key again"
            )
    return None
