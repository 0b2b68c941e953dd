"""The config for accounts pointing at the vendor simulator: the YAML a user would write.

One builder for the tests and benchmarks/, so a change to the config format is made
once. `Account` is one entry (`base_url` is the simulator's URL for its vendor, or
anything else a test wants, such as a closed port); `config_text` writes the file
around the entries; `simulator_config` writes one entry per key the simulator knows.
Keys and file paths are quoted, so any printable key is taken as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from exporter.demo.simulator import SimAccount


class Vendors(Protocol):
    """A vendor simulator, in this process or in a child (benchmarks/harness.py)."""

    @property
    def accounts(self) -> Mapping[str, SimAccount]: ...

    def base_url(self, provider: str) -> str: ...


@dataclass(frozen=True)
class Account:
    """One `accounts:` entry."""

    provider: str
    account: str
    base_url: str
    api_key: str | None = None
    api_key_file: str | Path | None = None
    # Per-account fields as the config spells them (interval, timeout, max_staleness).
    settings: Mapping[str, str] = field(default_factory=dict)

    def yaml(self) -> str:
        lines = [f"  - provider: {self.provider}", f"    account: {self.account}"]
        if self.api_key is not None:
            lines.append(f"    api_key: {json.dumps(self.api_key)}")
        if self.api_key_file is not None:
            lines.append(f"    api_key_file: {json.dumps(str(self.api_key_file))}")
        lines.append(f"    base_url: {self.base_url}")
        lines += [f"    {name}: {value}" for name, value in self.settings.items()]
        return "\n".join(lines) + "\n"


def account_at(
    sim: Vendors,
    provider: str,
    account: str,
    api_key: str | None = None,
    *,
    api_key_file: str | Path | None = None,
    **settings: str,
) -> Account:
    """An account of `provider` polled from the simulator."""
    return Account(provider, account, sim.base_url(provider), api_key, api_key_file, settings)


def config_text(accounts: Iterable[Account], **global_settings: str) -> str:
    """A whole config: `global:` with `global_settings` in the order given, then the
    accounts (`accounts: []` for none)."""
    head = "".join(f"  {name}: {value}\n" for name, value in global_settings.items())
    entries = "".join(account.yaml() for account in accounts)
    return ("global:\n" + head if head else "") + (
        "accounts:\n" + entries if entries else "accounts: []\n"
    )


def write_config(path: Path, accounts: Iterable[Account], **global_settings: str) -> Path:
    path.write_text(config_text(accounts, **global_settings))
    return path


def simulated_accounts(
    sim: Vendors,
    name: Callable[[SimAccount], str],
    overrides: Mapping[str, Mapping[str, str]] | None = None,
) -> list[Account]:
    """One entry per simulated key, named by `name`; `overrides` maps an API key to its
    per-account fields."""
    return [
        account_at(sim, a.provider, name(a), a.api_key, **(overrides or {}).get(a.api_key, {}))
        for a in sim.accounts.values()
    ]


def simulator_config(
    sim: Vendors,
    *,
    name: Callable[[SimAccount], str],
    overrides: Mapping[str, Mapping[str, str]] | None = None,
    **global_settings: str,
) -> str:
    """The config for every key the simulator knows (see `simulated_accounts`)."""
    return config_text(simulated_accounts(sim, name, overrides), **global_settings)


def last_part(account: SimAccount) -> str:
    """The `account` name of a key spelled `<who>-<provider>-<name>`: `demo-pictory-marketing`
    -> `marketing`, as `saas-quota-exporter demo` names its accounts."""
    return account.api_key.split("-", 2)[2]
