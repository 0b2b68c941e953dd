"""Splitting the accounts of one config across replicas (docs/deployment.md, "More
than one machine").

Every replica reads the same config and keeps only its shard: the accounts whose
stable hash of "provider/account" falls to its index, the way kube-state-metrics
shards objects. sha256, not Python's `hash()`: that one is salted per process, so
two replicas would disagree about who owns what. Each account is in exactly one
shard of a given count, so no account is polled twice or missed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from typing import Final

from exporter.config import Config

# The ordinal a StatefulSet gives its pods: saas-quota-exporter-2 -> 2.
_ORDINAL: Final = re.compile(r"-([0-9]+)$")
MAX_SHARDS: Final = 1024


def shard_of(provider: str, account: str, count: int) -> int:
    """The shard (0 to count - 1) that owns this account, the same in every process."""
    digest = hashlib.sha256(f"{provider}/{account}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def ordinal(hostname: str) -> int:
    """The trailing ordinal of a StatefulSet pod's name; ValueError if it has none."""
    match = _ORDINAL.search(hostname.strip())
    if match is None:
        raise ValueError(
            f"cannot take the shard index from the hostname {hostname[:80]!r}: it does not"
            " end in -<number> like a StatefulSet pod's (saas-quota-exporter-2);"
            " pass --shard.index instead"
        )
    return int(match.group(1))


@dataclass(frozen=True)
class Shard:
    """This replica's part: shard `index` of `count` (0 <= index < count)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ValueError(f"--shard.count must be from 1 to {MAX_SHARDS}, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"--shard.index must be from 0 to {self.count - 1} (--shard.count {self.count}),"
                f" got {self.index}"
            )

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def owns(self, provider: str, account: str) -> bool:
        return not self.sharded or shard_of(provider, account, self.count) == self.index

    def select(self, config: Config) -> Config:
        """The config with only this shard's accounts."""
        if not self.sharded:
            return config
        return replace(
            config, accounts=tuple(a for a in config.accounts if self.owns(a.provider, a.account))
        )
