"""The demo's vendor simulator with fault injection, for tests and benchmarks.

exporter/demo/simulator.py answers as the vendors do; this subclass also answers as
they fail. Tests take control per API key with `set_fault` (status, body, headers, a
delay, a reset connection, a stream, a gzip bomb, a dripped body), and read back what
reached the vendor: every request by path and key, the bytes of each streamed answer,
and the keys whose client hung up on a late answer.
"""

from __future__ import annotations

import functools
import select
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from exporter.demo import simulator
from exporter.demo.simulator import DAY, GB, Answer, SimAccount, SimMeter, send, send_head
from exporter.demo.vendors import SIMULATED
from exporter.demo.vendors.base import SimulatedVendor

__all__ = ["DAY", "GB", "Fault", "SimAccount", "SimMeter", "VendorSimulator", "gzip_filler"]


@dataclass
class Fault:
    """What to answer instead of the simulated body, for one key."""

    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # Close the connection without answering (a reset as the client sees it).
    reset: bool = False
    # Stream this many bytes of filler as the body instead of `body`.
    stream_bytes: int = 0
    # A gzip bomb instead of `body`: `Content-Encoding: gzip` and a compressed body
    # that decodes to this many bytes of filler (about a thousandth of it on the wire).
    gzip_bomb: int = 0
    # Send the status line and headers at once, then the body one byte every `drip`
    # seconds: a vendor that answers but never finishes (each read makes progress,
    # so only a timeout over the whole request ends it).
    drip: float = 0.0

    def over(self, normal: Answer) -> Answer:
        """What this fault answers for a request whose simulated answer is `normal`.

        A fault that sets only a status, headers or timing keeps the normal answer's
        body and headers; a delay-only fault (status left at 200) keeps its status
        too, so an unknown key still gets its 401.
        """
        if self.body is not None:
            return Answer(self.status, self.body, self.headers)
        status = normal.status if self.status == 200 else self.status
        return Answer(status, normal.body, {**normal.headers, **self.headers})


class VendorSimulator(simulator.VendorSimulator):
    """The demo's simulator, answering with a key's `Fault` where one is set."""

    def __init__(
        self,
        accounts: Iterable[SimAccount],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        vendors: Mapping[str, SimulatedVendor] = SIMULATED,
    ) -> None:
        super().__init__(accounts, host=host, port=port, clock=clock, vendors=vendors)
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()
        # Notified when a handler thread records how an answer ended (below).
        self._ended = threading.Condition(self._lock)
        self.requests: list[tuple[str, str | None]] = []  # (path, api key) per request
        self.streamed: list[int] = []  # bytes sent per streamed (stream_bytes) answer
        self.hung_up: list[str] = []  # keys whose client left while an answer was delayed

    def start(self) -> VendorSimulator:
        super().start()
        return self

    def __enter__(self) -> VendorSimulator:
        return self.start()

    def set_fault(self, api_key: str, fault: Fault | None) -> None:
        with self._lock:
            if fault is None:
                self._faults.pop(api_key, None)
            else:
                self._faults[api_key] = fault

    def request_count(self, api_key: str) -> int:
        with self._lock:
            return sum(1 for _, key in self.requests if key == api_key)

    def request_counts(self) -> Counter[str]:
        """Requests so far per API key (keyless ones left out)."""
        with self._lock:
            return Counter(key for _, key in self.requests if key)

    def wait_for_streams(self, count: int, timeout: float) -> list[int]:
        """Bytes sent per streamed answer, once `count` of them have ended.

        A handler learns that the client hung up only when its next write fails,
        which can be a moment after the client has moved on; tests wait here.
        """
        with self._ended:
            self._ended.wait_for(lambda: len(self.streamed) >= count, timeout)
            return list(self.streamed)

    def wait_for_hang_up(self, api_key: str, timeout: float) -> bool:
        """Whether a client of a delayed answer for `api_key` has closed its connection
        before the answer was due (since the simulator started; waits up to `timeout`
        for it): how a cancelled or timed-out poll looks from the vendor's side."""
        with self._ended:
            return self._ended.wait_for(lambda: api_key in self.hung_up, timeout)

    # --- answering ----------------------------------------------------------------

    def respond(
        self, handler: BaseHTTPRequestHandler, path: str, headers: Mapping[str, str]
    ) -> None:
        vendor = self.vendor_at(path)
        if vendor is None:
            send(handler, self.answer(path, headers))  # a 404, neither recorded nor faulted
            return
        key = vendor.api_key(headers)
        with self._lock:
            self.requests.append((path, key or None))
            fault = self._faults.get(key)
        normal = self.answer(path, headers)
        if fault is None:
            send(handler, normal)
            return
        answer = fault.over(normal)
        if fault.delay and _client_left_within(handler, fault.delay):
            with self._ended:
                self.hung_up.append(key)
                self._ended.notify_all()
            handler.close_connection = True
        elif fault.reset:
            # SO_LINGER 0: close sends RST instead of FIN.
            handler.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            handler.connection.close()
            handler.close_connection = True
        elif fault.stream_bytes:
            sent = _stream(handler, answer.status, fault.stream_bytes)
            with self._ended:
                self.streamed.append(sent)
                self._ended.notify_all()
        else:
            if fault.gzip_bomb:
                headers = {**answer.headers, "Content-Encoding": "gzip"}
                answer = Answer(answer.status, gzip_filler(fault.gzip_bomb), headers)
            if fault.drip:
                _drip(handler, answer, fault.drip)
            else:
                send(handler, answer)


def _client_left_within(handler: BaseHTTPRequestHandler, delay: float) -> bool:
    """Wait `delay` seconds, or until the client closes the connection."""
    deadline = time.monotonic() + delay
    # The request is read and a GET has no body, so the socket turns readable only
    # at EOF or reset (or a pipelined request, which no client of ours sends: then
    # just wait out the delay). poll(), not select(): select() fails on descriptors
    # past 1023.
    poller = select.poll()
    poller.register(handler.connection, select.POLLIN)
    if not poller.poll(delay * 1000):
        return False
    try:
        if handler.connection.recv(1, socket.MSG_PEEK):
            time.sleep(max(0.0, deadline - time.monotonic()))
            return False
    except OSError:
        pass  # reset by the client: gone all the same
    return True


def _drip(handler: BaseHTTPRequestHandler, answer: Answer, seconds: float) -> None:
    """The head at once, then one byte every `seconds`, until the body is out or the
    client leaves."""
    try:
        send_head(handler, answer.status, answer.headers, len(answer.body))
        handler.wfile.flush()
        for i in range(len(answer.body)):
            if i and _client_left_within(handler, seconds):
                handler.close_connection = True
                return
            handler.wfile.write(answer.body[i : i + 1])
            handler.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up (a timeout test); nothing to tell


def _stream(handler: BaseHTTPRequestHandler, status: int, size: int) -> int:
    """`size` bytes of filler as a JSON body; returns how many went out before the
    client stopped reading."""
    chunk = b" " * 65536
    sent = 0
    try:
        send_head(handler, status, {}, size)
        while sent < size:
            piece = chunk[: size - sent]
            handler.wfile.write(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client stopped reading at its cap, as it should
    return sent


@functools.cache
def gzip_filler(decoded_bytes: int) -> bytes:
    """A gzip member that decodes to `decoded_bytes` spaces (cached: a bomb of
    hundreds of MiB takes a moment to compress and is sent many times)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip header
    chunk = b" " * min(decoded_bytes, 2**20)
    parts = []
    left = decoded_bytes
    while left > 0:
        parts.append(compressor.compress(chunk[:left]))
        left -= min(left, len(chunk))
    parts.append(compressor.flush())
    return b"".join(parts)
