"""Sharding the accounts of one config across replicas.

The unit tests pin the split (stable across processes, every account in exactly one
shard); the process test runs three real exporters against a local stand-in vendor
and counts, at the vendor, which keys each one polled.
"""

from __future__ import annotations

import collections
import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config import parse_config
from exporter.families import families
from exporter.sharding import MAX_SHARDS, Shard, ordinal, shard_of
from exporter.state import StateStore
from tests.support.examples import examples
from tests.unit.providers.fixtures import recorded

_NAMES = st.from_regex(r"[a-zA-Z0-9_.-]{1,20}", fullmatch=True)


@settings(max_examples=examples(100), deadline=None)
@given(
    accounts=st.sets(st.tuples(st.sampled_from(["pictory", "tornado"]), _NAMES), max_size=60),
    count=st.integers(min_value=1, max_value=12),
)
def test_every_account_is_in_exactly_one_shard(accounts: set[tuple[str, str]], count: int) -> None:
    owners = {
        key: [index for index in range(count) if Shard(index, count).owns(*key)] for key in accounts
    }
    assert all(len(found) == 1 for found in owners.values()), owners


def test_the_split_is_sha256_of_provider_slash_account_the_same_in_every_process() -> None:
    """Pinned values: Python's hash() is salted per process, so replicas using it
    would each poll a different, overlapping subset."""
    digest = hashlib.sha256(b"pictory/marketing").digest()
    assert shard_of("pictory", "marketing", 7) == int.from_bytes(digest[:8], "big") % 7
    assert [shard_of("pictory", f"a{i}", 3) for i in range(8)] == [
        shard_of("pictory", f"a{i}", 3) for i in range(8)
    ]


def test_shards_are_balanced() -> None:
    counts = collections.Counter(shard_of("pictory", f"customer-{i}", 3) for i in range(3000))
    assert all(900 <= n <= 1100 for n in counts.values()), counts


@pytest.mark.parametrize(
    ("hostname", "index"),
    [
        ("saas-quota-exporter-2", 2),
        ("saas-quota-exporter-0", 0),
        ("exporter-12\n", 12),
        ("a-b-c-7", 7),
    ],
)
def test_the_index_is_the_pod_names_ordinal(hostname: str, index: int) -> None:
    assert ordinal(hostname) == index


@pytest.mark.parametrize("hostname", ["saas-quota-exporter", "host2", "", "exporter-2a"])
def test_a_hostname_without_an_ordinal_is_a_clear_error(hostname: str) -> None:
    with pytest.raises(ValueError, match=r"does not end in -<number>.*--shard.index"):
        ordinal(hostname)


@pytest.mark.parametrize(
    ("index", "count", "message"),
    [
        (3, 3, "--shard.index must be from 0 to 2"),
        (-1, 3, "--shard.index must be from 0 to 2"),
        (0, 0, "--shard.count must be from 1"),
        (0, MAX_SHARDS + 1, "--shard.count must be from 1"),
    ],
)
def test_a_shard_outside_the_count_is_refused(index: int, count: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Shard(index, count)


def test_select_keeps_only_the_shards_accounts_and_everything_else() -> None:
    lines = "\n".join(
        f"  - {{provider: pictory, account: a{i}, api_key: pictai_key_{i:04d}}}" for i in range(30)
    )
    config = parse_config(f"global: {{interval: 2m, concurrency: 5}}\naccounts:\n{lines}\n")
    parts = [Shard(index, 3).select(config) for index in range(3)]
    assert sorted(a.account for part in parts for a in part.accounts) == sorted(
        a.account for a in config.accounts
    )
    assert all(part.interval == 120.0 and part.concurrency == 5 for part in parts)
    assert Shard().select(config) is config


def test_shard_info_is_exported_only_when_sharded() -> None:
    store = StateStore()
    names = {family.name for family in families(store.snapshot(), 0.0)}
    assert "saas_quota_shard_info" not in names
    store.set_shard(0, 1)
    assert "saas_quota_shard_info" not in {f.name for f in families(store.snapshot(), 0.0)}
    store.set_shard(2, 3)
    (info,) = [f for f in families(store.snapshot(), 0.0) if f.name == "saas_quota_shard_info"]
    assert [(s.labels, s.value) for s in info.samples] == [({"index": "2", "count": "3"}, 1.0)]


# --- three real exporters, one stand-in vendor ------------------------------------------


class CountingVendor:
    """Pictory and Tornado on loopback, answering their recorded bodies at once and
    counting requests per API key (HTTP/1.1 keep-alive, like the real hosts)."""

    def __init__(self) -> None:
        self.requests: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        bodies = {
            "/pictoryapis/v1/quota": recorded("pictory", "quota").body,
            "/usage": recorded("tornado", "usage_stripe_key").body,
        }
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                key = self.headers.get("Authorization") or self.headers.get("x-api-key") or ""
                with vendor.lock:
                    vendor.requests[key.removeprefix("Bearer ")] += 1
                body = bodies.get(self.path, b"{}")
                self.send_response(200 if self.path in bodies else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _up_series(text: str) -> set[tuple[str, str]]:
    # prometheus_client writes label names sorted.
    pattern = r'^saas_quota_up\{account="([^"]+)",provider="([^"]+)"\} 1\.0$'
    return {(p, a) for a, p in re.findall(pattern, text, re.MULTILINE)}
