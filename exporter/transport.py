"""The HTTP clients every poll goes out through: many small connection pools.

Why not one client: httpcore's pool walks every connection it holds, for every
request queued in it, each time a request arrives or a response is closed
(`_assign_requests_to_connections`: `has_expired` polls each idle socket,
`is_available` is asked per request and connection). With one pool of 64
connections and 64 polls in flight that walk is 64 x 64 steps per event; measured at
10,000 accounts and a 200 ms vendor it cost ~21 ms of CPU a poll, and the first round
took 221 s at 100 % of a core. Pools of at most `CLIENT_CONNECTIONS`, each serving
at most that many polls at once (so nothing ever queues inside a pool), keep the
walk to 8 x 8 steps whatever the global concurrency.

Which pool a poll uses: the first one with a free slot, starting at its provider's
home pool, so a provider's keep-alive connections stay in the few pools it uses
and are reused poll after poll.
"""

from __future__ import annotations

import contextlib
import math
import ssl
import zlib
from collections.abc import Iterator
from types import TracebackType
from typing import Final

import httpx

from exporter import __version__
from exporter.config import DEFAULT_CONCURRENCY

USER_AGENT: Final = f"saas-quota-exporter/{__version__}"
# Connections (and polls in flight) per pool: the walk above is this squared.
CLIENT_CONNECTIONS: Final = 8


def make_client(
    max_connections: int = DEFAULT_CONCURRENCY, *, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """One client: our User-Agent (Pictory's Cloudflare blocks generic ones).

    The pool holds one connection per poll in flight and keeps them all alive for
    reuse, so a round of thousands of keys costs that many handshakes, not one per
    key.
    """
    return httpx.AsyncClient(
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            # Quota answers are small; asking for no compression spares the vendor
            # and us. A server that compresses anyway is decoded by the poller, a
            # bounded step at a time under the same body cap.
            "Accept-Encoding": "identity",
        },
        follow_redirects=False,
        verify=verify,
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
    )


class Clients:
    """Enough small clients for `max_connections` polls in flight, and their leases.

    `Clients(64)` makes 8 clients of 8 connections sharing one TLS context (one CA
    bundle in memory, loaded once). `Clients.wrapping(client)` lends one given client
    to every poll (tests, tools), with no bound of its own.
    """

    def __init__(self, max_connections: int) -> None:
        count = max(1, math.ceil(max_connections / CLIENT_CONNECTIONS))
        # trust_env: SSL_CERT_FILE / SSL_CERT_DIR, as each client would read them.
        context = httpx.create_ssl_context(trust_env=True)
        self._clients = [make_client(CLIENT_CONNECTIONS, verify=context) for _ in range(count)]
        self._per_client: int | None = CLIENT_CONNECTIONS
        self._busy = [0] * count
        # What the pools hold at most in all (None: unbounded).
        self.max_connections: int | None = count * CLIENT_CONNECTIONS

    @classmethod
    def wrapping(cls, client: httpx.AsyncClient) -> Clients:
        clients = cls.__new__(cls)
        clients._clients = [client]
        clients._per_client = None
        clients._busy = [0]
        clients.max_connections = None
        return clients

    @property
    def clients(self) -> tuple[httpx.AsyncClient, ...]:
        return tuple(self._clients)

    def in_flight(self) -> tuple[int, ...]:
        """Leases held now, per client (tests)."""
        return tuple(self._busy)

    @contextlib.contextmanager
    def lease(self, home: str) -> Iterator[httpx.AsyncClient]:
        """A client with a free slot for one request, preferring `home`'s pool.

        Never waits: the poller's global bound keeps the polls in flight at or under
        `max_connections`, so a free slot exists. Past it (a reload that raised the
        bound is held to the pool made at start) the least busy client is lent, and
        httpx queues the request in its pool.
        """
        busy = self._busy
        count = len(busy)
        start = zlib.crc32(home.encode()) % count
        limit = self._per_client
        index = start
        if limit is not None:
            for step in range(count):
                candidate = (start + step) % count
                if busy[candidate] < limit:
                    index = candidate
                    break
            else:
                index = min(range(count), key=busy.__getitem__)
        busy[index] += 1
        try:
            yield self._clients[index]
        finally:
            busy[index] -= 1

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
