"""The tests' vendor simulator (tests/support/simulator.py): every fault as a client
sees it, and the record of what reached the vendor.

A status, a reset connection, a stream cut short, a late answer, a client that gives
up on a late answer (what a cancelled poll looks like), a gzip bomb and a dripped
body; and every request on record by path and key, refused ones included.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import socket
import struct
import zlib
from collections.abc import Iterator

import httpx
import pytest

from exporter.model import MeterReading, PollError, Reason
from exporter.providers import PROVIDERS
from tests.fakes import FakeClock
from tests.support.processes import wait_until
from tests.support.simulator import Fault, VendorSimulator
from tests.unit.demo.scenario import (
    ACCOUNTS,
    ELAPSED,
    EXPECTED,
    KEYS,
    MIB,
    OTHER_PICTORY,
    T0,
    UNKNOWN_PATHS,
    WRONG_KEY,
    connect,
    get,
    get_unknown,
    parse,
    path,
    raw_request,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now=T0, start=T0)


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[VendorSimulator]:
    simulator = VendorSimulator(ACCOUNTS, clock=clock.time)
    with simulator:
        yield simulator


# --- the record of requests -----------------------------------------------------------


@pytest.mark.parametrize("provider", list(KEYS))
def test_each_vendors_request_is_on_record_by_path_and_key(
    sim: VendorSimulator, provider: str
) -> None:
    assert get(sim, provider, KEYS[provider]).status_code == 200
    assert sim.requests == [(path(provider), KEYS[provider])]


@pytest.mark.parametrize("provider", list(KEYS))
def test_a_refused_request_is_still_on_record_with_its_key(
    sim: VendorSimulator, provider: str
) -> None:
    assert get(sim, provider, WRONG_KEY).status_code == 401
    # Refused requests are still requests: the key they carried is on record.
    assert sim.requests == [(path(provider), WRONG_KEY)]
    assert sim.request_count(WRONG_KEY) == 1


def test_a_key_at_the_wrong_vendor_is_counted(sim: VendorSimulator) -> None:
    # Tornado and Piloterr both read `x-api-key`: the header fits, the account does not.
    assert get(sim, "piloterr", KEYS["tornado"]).status_code == 401
    assert sim.request_count(KEYS["tornado"]) == 1


def test_a_request_without_a_key_is_recorded_without_one(sim: VendorSimulator) -> None:
    assert get(sim, "vertaaux", None).status_code == 401
    assert sim.requests == [(path("vertaaux"), None)]
    assert sim.request_counts() == {}


def test_requests_are_recorded_in_order_by_path_and_key(sim: VendorSimulator) -> None:
    base = f"http://127.0.0.1:{sim.port}"
    # Header names are case-insensitive and a query string is not part of the path.
    first = httpx.get(
        base + path("tornado") + "?verbose=1", headers={"X-API-KEY": KEYS["tornado"]}, timeout=5
    )
    second = get(sim, "pictory", KEYS["pictory"])
    third = get(sim, "pictory", KEYS["pictory"])
    assert [r.status_code for r in (first, second, third)] == [200, 200, 200]
    assert sim.requests == [
        (path("tornado"), KEYS["tornado"]),
        (path("pictory"), KEYS["pictory"]),
        (path("pictory"), KEYS["pictory"]),
    ]
    assert sim.request_count(KEYS["pictory"]) == 2
    assert sim.request_count(KEYS["vertaaux"]) == 0
    assert sim.request_counts() == {KEYS["tornado"]: 1, KEYS["pictory"]: 2}


@pytest.mark.parametrize("url_path", UNKNOWN_PATHS)
def test_unknown_paths_are_404_and_not_recorded(sim: VendorSimulator, url_path: str) -> None:
    response = get_unknown(sim, url_path)
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}
    assert sim.requests == []


# --- faults: status, body, headers ----------------------------------------------------


def test_a_fault_answers_with_its_status_body_and_headers(sim: VendorSimulator) -> None:
    key = KEYS["vertaaux"]
    sim.set_fault(
        key,
        Fault(503, b"down for maintenance", {"Retry-After": "7", "Content-Type": "text/plain"}),
    )
    response = get(sim, "vertaaux", key)
    assert response.status_code == 503
    assert response.content == b"down for maintenance"
    assert response.headers["retry-after"] == "7"
    # The fault's own Content-Type replaces the JSON default instead of joining it.
    assert response.headers.get_list("content-type") == ["text/plain"]
    with pytest.raises(PollError) as caught:
        parse("vertaaux", response)
    assert (caught.value.reason, caught.value.retry_after) == (Reason.SERVER, 7.0)
    assert sim.request_count(key) == 1


def test_a_fault_is_for_one_key_only(sim: VendorSimulator) -> None:
    sim.set_fault(KEYS["pictory"], Fault(500, b"oops"))
    assert get(sim, "pictory", KEYS["pictory"]).status_code == 500
    # Same vendor, another key: the simulated answer as before.
    other = get(sim, "pictory", OTHER_PICTORY)
    assert other.status_code == 200
    assert parse("pictory", other).meters == (
        MeterReading("ai_credits", "credits", used=5, limit=50),
    )


def test_clearing_a_fault_restores_the_simulated_answer(
    sim: VendorSimulator, clock: FakeClock
) -> None:
    key = KEYS["piloterr"]
    clock.advance(ELAPSED)
    sim.set_fault(key, Fault(402, b'{"error": "Payment required"}'))
    assert get(sim, "piloterr", key).status_code == 402
    sim.set_fault(key, None)
    response = get(sim, "piloterr", key)
    assert response.status_code == 200
    assert parse("piloterr", response) == EXPECTED["piloterr"]
    # Clearing a key that has no fault is harmless.
    sim.set_fault(key, None)
    sim.set_fault("no-fault-was-ever-set", None)
    assert get(sim, "piloterr", key).status_code == 200


# --- faults: reset and streaming --------------------------------------------------------


def test_a_reset_fault_resets_the_connection_without_an_answer(sim: VendorSimulator) -> None:
    key = KEYS["tornado"]
    sim.set_fault(key, Fault(reset=True))
    with connect(sim) as client:
        client.sendall(raw_request("tornado", key))
        # An RST, not an orderly close (which would read as b"") and not a timeout.
        with pytest.raises(ConnectionResetError):
            client.recv(1024)
    assert sim.request_count(key) == 1


def test_a_stream_sends_exactly_its_bytes_and_reports_them(sim: VendorSimulator) -> None:
    size = MIB + 123  # more than one 64 KiB chunk, and not a multiple of it
    sim.set_fault(KEYS["vidnavigator"], Fault(200, stream_bytes=size))
    response = get(sim, "vidnavigator", KEYS["vidnavigator"])
    assert response.status_code == 200
    assert response.headers["content-length"] == str(size)
    assert response.content == b" " * size
    assert sim.wait_for_streams(1, timeout=10) == [size]


def test_a_client_that_stops_reading_cuts_a_stream_short(sim: VendorSimulator) -> None:
    size = 64 * MIB
    sim.set_fault(KEYS["vidnavigator"], Fault(200, stream_bytes=size))
    with connect(sim) as client:
        client.sendall(raw_request("vidnavigator", KEYS["vidnavigator"]))
        client.recv(65536)
    # What the vendor got out before its writes failed: socket buffers' worth.
    streamed = sim.wait_for_streams(1, timeout=10)
    assert len(streamed) == 1, "the stream did not end within 10 s of the client leaving"
    assert streamed[0] < size


# --- faults: delay and hang-ups ---------------------------------------------------------


def test_a_client_that_waits_gets_the_delayed_answer_and_is_not_a_hang_up(
    sim: VendorSimulator, clock: FakeClock
) -> None:
    key = KEYS["pictory"]
    clock.advance(ELAPSED)
    sim.set_fault(key, Fault(200, delay=0.3))
    response = get(sim, "pictory", key, timeout=10)
    assert response.status_code == 200
    assert parse("pictory", response) == EXPECTED["pictory"]
    # The handler decides "hung up" before it answers, so with the answer in hand
    # the record is final.
    assert sim.hung_up == []
    assert not sim.wait_for_hang_up(key, timeout=0)


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_client_leaving_during_a_delay_is_recorded_as_hung_up(
    sim: VendorSimulator, how: str
) -> None:
    key = KEYS["piloterr"]
    sim.set_fault(key, Fault(200, delay=1.0))
    client = connect(sim)
    client.sendall(raw_request("piloterr", key))
    # Once the request is on record its answer is pending: leave now.
    wait_until(lambda: sim.request_count(key) == 1, timeout=10)
    if how == "reset":
        # SO_LINGER 0: the close sends an RST instead of a FIN.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    assert sim.wait_for_hang_up(key, timeout=10)
    assert sim.hung_up == [key]


def test_a_client_timing_out_on_a_delay_is_recorded_as_hung_up(sim: VendorSimulator) -> None:
    # How a poll cancelled by its timeout looks to the vendor.
    key = KEYS["vertaaux"]
    sim.set_fault(key, Fault(200, delay=1.0))
    url = sim.base_url("vertaaux") + PROVIDERS["vertaaux"].path
    with httpx.Client(timeout=0.1) as client, pytest.raises(httpx.ReadTimeout):
        client.get(url, headers=PROVIDERS["vertaaux"].auth_headers(key))
    assert sim.wait_for_hang_up(key, timeout=10)
    assert sim.hung_up == [key]
    assert not sim.wait_for_hang_up(KEYS["pictory"], timeout=0), "only the key that left"


def test_a_pipelined_request_is_not_mistaken_for_a_hang_up(sim: VendorSimulator) -> None:
    # The socket turns readable during the delay, but with a request, not with EOF.
    key = KEYS["tornado"]
    sim.set_fault(key, Fault(200, delay=0.2))
    received = b""
    with connect(sim) as client:
        client.sendall(
            raw_request("tornado", key) + raw_request("tornado", key, "Connection: close\r\n")
        )
        while chunk := client.recv(65536):
            received += chunk
    assert received.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert sim.hung_up == []
    assert sim.request_count(key) == 2


def test_a_delay_only_fault_delays_the_simulated_answer_headers_included(
    sim: VendorSimulator,
) -> None:
    key = KEYS["vertaaux"]
    plain = get(sim, "vertaaux", key)
    sim.set_fault(key, Fault(200, delay=0.1))
    late = get(sim, "vertaaux", key, timeout=10)
    assert late.content == plain.content
    assert late.headers.get("x-ratelimit-limit") == plain.headers["x-ratelimit-limit"]


def test_a_delayed_answer_is_sent_on_a_connection_with_a_high_file_descriptor(
    sim: VendorSimulator,
) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 1500:
        pytest.skip(f"needs room for 1100 extra file descriptors (soft limit {soft})")
    key = KEYS["pictory"]
    sim.set_fault(key, Fault(200, delay=0.1))
    # A process with this many files and sockets open (a long test session, say):
    # the lowest free descriptor, which accept() takes, is then past 1024.
    base = os.open(os.devnull, os.O_RDONLY)
    filler = [os.dup(base) for _ in range(1100)]
    connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    try:
        connection.request("GET", path("pictory"), headers={"Authorization": key})
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["videoMinutes"]["limit"] == 600
    finally:
        connection.close()
        for fd in [base, *filler]:
            os.close(fd)


# --- faults: gzip bombs and dripped bodies ----------------------------------------------


def test_a_gzip_bomb_is_small_on_the_wire_and_decodes_to_its_size(sim: VendorSimulator) -> None:
    size = 64 * MIB
    sim.set_fault(KEYS["tornado"], Fault(200, gzip_bomb=size))
    with connect(sim) as client:
        client.sendall(raw_request("tornado", KEYS["tornado"]))
        head, _, body = client.recv(65536).partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int(headers["Content-Length"])
        while len(body) < length:
            body += client.recv(65536)
    assert lines[0] == "HTTP/1.1 200 OK"
    assert headers["Content-Encoding"] == "gzip"
    # The whole point of a bomb: a thousand times bigger decoded than sent.
    assert length < size // 500
    decoded = zlib.decompress(body, wbits=31)
    assert len(decoded) == size
    assert decoded.strip() == b""


def test_httpx_decodes_a_gzip_bomb_even_when_asked_for_identity(sim: VendorSimulator) -> None:
    # Why the exporter must count decoded bytes: the server ignores Accept-Encoding.
    sim.set_fault(KEYS["piloterr"], Fault(200, gzip_bomb=3 * MIB))
    url = sim.base_url("piloterr") + PROVIDERS["piloterr"].path
    headers = {
        **PROVIDERS["piloterr"].auth_headers(KEYS["piloterr"]),
        "Accept-Encoding": "identity",
    }
    response = httpx.get(url, headers=headers, timeout=10)
    assert len(response.content) == 3 * MIB


def test_a_dripped_answer_arrives_whole_one_byte_at_a_time(
    sim: VendorSimulator, clock: FakeClock
) -> None:
    key = KEYS["vertaaux"]
    clock.advance(ELAPSED)
    body = b'{"plan": "pro"}'
    sim.set_fault(key, Fault(200, body=body, drip=0.01))
    with connect(sim) as client:
        client.sendall(raw_request("vertaaux", key))
        received = b""
        while not received.endswith(body):
            piece = client.recv(65536)
            assert piece, f"closed early after {received!r}"
            received += piece
    assert b"Content-Length: 15\r\n" in received


def test_a_client_timing_out_on_a_dripped_body_ends_the_drip(sim: VendorSimulator) -> None:
    key = KEYS["pictory"]
    sim.set_fault(key, Fault(200, body=b"x" * 10_000, drip=0.05))
    url = sim.base_url("pictory") + PROVIDERS["pictory"].path
    with (
        httpx.Client(timeout=5) as client,
        client.stream("GET", url, headers=PROVIDERS["pictory"].auth_headers(key)) as response,
    ):
        # The headers came at once; the body would take 500 s.
        assert response.status_code == 200
        assert response.headers["content-length"] == "10000"
        first = next(response.iter_raw(1))
        assert first == b"x"
    # The handler notices the close between two bytes and stops: the next answer
    # on a fresh connection is not held up behind it.
    sim.set_fault(key, None)
    assert get(sim, "pictory", key, timeout=5).status_code == 200
