"""Three real exporter processes share 3,000 accounts: each polled once, all served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.sharding import shard_of
from tests.support.processes import ExporterProcess, wait_until
from tests.unit.test_sharding import CountingVendor, _up_series


@pytest.fixture
def counting_vendor() -> Iterator[CountingVendor]:
    vendor = CountingVendor()
    yield vendor
    vendor.close()


def test_three_shards_poll_each_account_exactly_once_and_serve_the_union(
    counting_vendor: CountingVendor, tmp_path: Path
) -> None:
    """3 replicas of one config of 3,000 accounts, each with --shard.count 3: at the
    vendor every key is asked for exactly once in the first round (the interval is
    far longer than the test), and the replicas' saas_quota_up series are disjoint
    and together exactly the configured accounts."""
    accounts: dict[str, tuple[str, str]] = {}
    lines = []
    for i in range(3000):
        provider = "pictory" if i % 2 else "tornado"
        key = f"pictai_key_{i:05d}" if provider == "pictory" else f"sk_key_{i:05d}"
        accounts[key] = (provider, f"customer-{i}")
        base = counting_vendor.url
        lines.append(
            f"  - {{provider: {provider}, account: customer-{i}, api_key: {key},"
            f" base_url: '{base}'}}"
        )
    config = tmp_path / "config.yml"
    # A timeout far beyond any load on a shared machine: a poll that timed out would be
    # retried, and the vendor would count that key twice without any shard being wrong.
    config.write_text("global: {interval: 1h, timeout: 10m}\naccounts:\n" + "\n".join(lines) + "\n")
    shards = [
        ExporterProcess(
            ["--config.file", str(config), "--shard.count", "3", "--shard.index", str(index)],
            tmp_path / f"shard{index}.log",
        )
        for index in range(3)
    ]
    try:
        for shard in shards:
            shard.start(wait_ready=False)
        for shard in shards:
            wait_until(shard.ready, timeout=90)
        with counting_vendor.lock:
            requests = dict(counting_vendor.requests)
        assert set(requests) == set(accounts), "a key polled that is not configured, or missed"
        assert sorted(set(requests.values())) == [1], "a key polled more than once"

        served: list[set[tuple[str, str]]] = []
        for index, shard in enumerate(shards):
            status, text = shard.get("/metrics", timeout=30)
            assert status == 200
            assert f'saas_quota_shard_info{{count="3",index="{index}"}} 1.0' in text
            served.append(_up_series(text))
        assert sum(len(s) for s in served) == len(accounts), "an account served twice"
        assert set().union(*served) == set(accounts.values())
        for index, part in enumerate(served):
            assert all(shard_of(p, a, 3) == index for p, a in part)
    finally:
        for shard in shards:
            shard.stop()
