"""The vendor simulator over real loopback sockets: bodies, auth, and every fault.

The demo and the end-to-end tests trust the simulator to answer as the five vendors
do, so its bodies are checked with the project's own parsers, against meters set up
here and a clock that only moves when a test says so. The faults are checked as a
client sees them: a status, a reset connection, a stream cut short, a late answer,
and a client that gives up on a late answer (what a cancelled poll looks like).
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

from exporter.model import MeterReading, PollError, Readings, Reason
from exporter.providers import PROVIDERS
from exporter.simulator import DAY, GB, Fault, SimAccount, SimMeter, VendorSimulator
from tests.e2e import wait_until
from tests.fakes import FakeClock

# 2027-01-16T00:00:00Z. Midnight, so that Piloterr's date-only fields (period,
# renewal, key expiry) name the exact instants set up below.
T0 = 20834 * DAY
# Seconds after the start at which most tests read: every rate below is a power of
# two, so usage at this point is exact in binary floats.
ELAPSED = 100.0

KEYS = {
    "pictory": "pictai_sim_key_0001",
    "tornado": "sk_sim_key_tornado_0002",
    "piloterr": "piloterr-sim-key-0003",
    "vidnavigator": "vidnav-sim-key-0004",
    "vertaaux": "vx_live_sim_key_0005",
}
OTHER_PICTORY = "pictai_sim_key_other"
WRONG_KEY = "not-a-key-anyone-has"
MIB = 2**20

ACCOUNTS = [
    SimAccount(
        "pictory",
        KEYS["pictory"],
        {
            "video_minutes": SimMeter(limit=600, start=420, rate=0.5),
            "transcription_minutes": SimMeter(limit=600, start=12),
            "voiceover_minutes": SimMeter(limit=0),
            "ai_credits": SimMeter(limit=3000, start=140.5, rate=0.25),
        },
    ),
    SimAccount(
        "tornado",
        KEYS["tornado"],
        {
            "storage_gb": SimMeter(limit=1024, start=700, rate=0.25),
            "jobs": SimMeter(limit=None, start=1200, rate=0.5),
        },
        reset_in=12 * DAY,
    ),
    SimAccount(
        "piloterr",
        KEYS["piloterr"],
        {"api_credits": SimMeter(limit=2000, start=1700, rate=0.5)},
        reset_in=4 * DAY,
    ),
    SimAccount(
        "vidnavigator",
        KEYS["vidnavigator"],
        {
            "credits": SimMeter(limit=80, start=27.5, rate=0.125),
            "storage_gb": SimMeter(limit=500, start=120, rate=0.25),
        },
        plan="voyager",
        reset_in=20 * DAY,
    ),
    SimAccount(
        "vertaaux",
        KEYS["vertaaux"],
        {"credits": SimMeter(limit=1000, start=40, rate=0.25)},
        reset_in=DAY,
        period_length=DAY,
    ),
    # A second key at one vendor: faults are per key, not per vendor.
    SimAccount("pictory", OTHER_PICTORY, {"ai_credits": SimMeter(limit=50, start=5)}),
]

# What each parser must make of its vendor's body at ELAPSED, worked out by hand from
# ACCOUNTS (minutes x 60, GB x 2**30, resets at T0 + reset_in, periods of 30 days).
EXPECTED = {
    "pictory": Readings(
        meters=(
            MeterReading("video_seconds", "seconds", used=470 * 60, limit=600 * 60),
            MeterReading("transcription_seconds", "seconds", used=12 * 60, limit=600 * 60),
            # A limit of 0 is a real limit (no voice-over in the plan), not "unknown".
            MeterReading("voiceover_seconds", "seconds", used=0, limit=0),
            MeterReading("ai_credits", "credits", used=165.5, limit=3000),
        )
    ),
    "tornado": Readings(
        meters=(
            MeterReading(
                "storage_bytes", "bytes", used=725 * GB, limit=1024 * GB, remaining=299 * GB
            ),
            MeterReading("storage_reserved_bytes", "bytes", used=0),
            MeterReading("jobs", "jobs", used=1250),
            MeterReading(
                "billing_period_transfer_bytes",
                "bytes",
                used=362.5 * GB,
                reset_timestamp=T0 + 12 * DAY,
                period_start_timestamp=T0 - 18 * DAY,
            ),
        ),
        account_info=(("client_name", "Demo Pipeline"),),
    ),
    "piloterr": Readings(
        meters=(
            MeterReading(
                "api_credits",
                "credits",
                used=1750,
                limit=2000,
                remaining=250,
                reset_timestamp=T0 + 4 * DAY,
                period_start_timestamp=T0 - 26 * DAY,
            ),
            MeterReading("extra_credits", "credits", used=0, limit=0, remaining=0),
            MeterReading("credits", "credits", used=1750, remaining=250),
            MeterReading("key_requests_rolling_24h", "requests", limit=500),
        ),
        account_info=(("key_alias", "demo"), ("key_category", "production")),
        api_key_expiry_timestamp=T0 + 14 * DAY,
        api_key_active=True,
        rate_limits=(("minute", 600),),
    ),
    "vidnavigator": Readings(
        meters=(
            MeterReading(
                "credits",
                "credits",
                used=40,
                limit=80,
                remaining=40,
                reset_timestamp=T0 + 20 * DAY,
                period_start_timestamp=T0 - 10 * DAY,
            ),
            MeterReading("indexed_channels", "channels", used=2, limit=15, remaining=13),
            MeterReading("purchased_credits", "credits", remaining=5),
            MeterReading(
                "standard_requests",
                "requests",
                used=40_000,
                reset_timestamp=T0 + 20 * DAY,
                period_start_timestamp=T0 - 10 * DAY,
            ),
            MeterReading(
                "storage_bytes", "bytes", used=145 * GB, limit=500 * GB, remaining=355 * GB
            ),
            MeterReading(
                "transcription_seconds",
                "seconds",
                used=10 * 3600,
                reset_timestamp=T0 + 20 * DAY,
                period_start_timestamp=T0 - 10 * DAY,
            ),
        ),
        account_info=(
            ("billing_interval", "month"),
            ("cancel_at_period_end", "false"),
            ("plan", "voyager"),
            ("plan_name", "Voyager"),
            ("schema_generation", "g3"),
            ("subscription_status", "active"),
        ),
    ),
    "vertaaux": Readings(
        meters=(
            MeterReading(
                "credits", "credits", used=65, limit=1000, remaining=935, reset_timestamp=T0 + DAY
            ),
        ),
        account_info=(("plan", "pro"),),
    ),
}

# The 401 bodies docs/providers/ documents, one envelope per vendor.
UNAUTHORIZED = {
    "pictory": {"message": "Unauthorized"},
    "tornado": {"error": "Invalid API Key"},
    "piloterr": {"error": "Invalid API Key"},
    "vidnavigator": {"status": "error", "error": "unauthorized", "message": "Invalid API key"},
    "vertaaux": {"error": "unauthorized", "message": "Invalid or missing API key"},
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now=T0, start=T0)


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[VendorSimulator]:
    simulator = VendorSimulator(ACCOUNTS, clock=clock.time)
    with simulator:
        yield simulator


def path(provider: str) -> str:
    """The path the simulator serves a vendor's endpoint under."""
    return f"/{provider}{PROVIDERS[provider].path}"


def get(
    sim: VendorSimulator, provider: str, key: str | None, timeout: float = 5.0
) -> httpx.Response:
    """One request as the exporter sends it: the vendor's path and auth header."""
    headers = PROVIDERS[provider].auth_headers(key) if key is not None else {}
    url = sim.base_url(provider) + PROVIDERS[provider].path
    return httpx.get(url, headers=headers, timeout=timeout)


def parse(provider: str, response: httpx.Response) -> Readings:
    """The project's own adapter on a response (it takes lower-case header names)."""
    headers = {name.lower(): value for name, value in response.headers.items()}
    return PROVIDERS[provider].parse(response.status_code, headers, response.content)


def raw_request(provider: str, key: str, extra: str = "") -> bytes:
    auth = PROVIDERS[provider].auth_headers(key)
    lines = [f"GET {path(provider)} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in auth.items()]
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def connect(sim: VendorSimulator) -> socket.socket:
    return socket.create_connection(("127.0.0.1", sim.port), timeout=5)


def test_the_simulator_serves_until_stopped(clock: FakeClock) -> None:
    with VendorSimulator(ACCOUNTS, port=0, clock=clock.time) as simulator:
        # Port 0 asks for a free port; base_url names the one it got.
        assert simulator.port != 0
        assert simulator.base_url("tornado") == f"http://127.0.0.1:{simulator.port}/tornado"
        assert get(simulator, "tornado", KEYS["tornado"]).status_code == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", simulator.port), timeout=5).close()


# --- bodies -------------------------------------------------------------------------


@pytest.mark.parametrize("provider", list(KEYS))
def test_each_vendor_answers_its_key_with_a_body_its_parser_reads_exactly(
    sim: VendorSimulator, clock: FakeClock, provider: str
) -> None:
    clock.advance(ELAPSED)
    response = get(sim, provider, KEYS[provider])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    # Exact equality: no problems, no warnings, every value as set up in ACCOUNTS.
    assert parse(provider, response) == EXPECTED[provider]
    assert sim.requests == [(path(provider), KEYS[provider])]


def test_vertaaux_rate_limit_headers_agree_with_its_body(
    sim: VendorSimulator, clock: FakeClock
) -> None:
    # The adapter falls back to these headers when the body lacks a field, so the
    # simulator's must say what its body says.
    clock.advance(ELAPSED)
    response = get(sim, "vertaaux", KEYS["vertaaux"])
    assert response.headers["x-ratelimit-limit"] == "1000"
    assert response.headers["x-ratelimit-remaining"] == "935"
    assert response.headers["x-ratelimit-reset"] == str(int(T0 + DAY))
    assert response.json()["reset_date"] == "2027-01-17T00:00:00.000Z"


def test_simmeter_grows_linearly_caps_at_its_limit_and_wraps_at_its_period() -> None:
    meter = SimMeter(limit=10, start=2, rate=1, period=100)
    assert [meter.used(t) for t in (0, 5, 8, 50, 99)] == [2, 7, 10, 10, 10]
    assert meter.used(103) == 5, "a new period starts again from `start`"
    assert SimMeter(limit=None, start=2, rate=1).used(1000) == 1002, "no limit, no cap"


def test_usage_over_http_follows_the_injected_clock(sim: VendorSimulator, clock: FakeClock) -> None:
    def video_used() -> float | None:
        readings = parse("pictory", get(sim, "pictory", KEYS["pictory"]))
        return readings.meters[0].used

    seen = [video_used()]
    for step in (ELAPSED, 900, 30 * DAY - 900):  # to 100 s, 1000 s, 30 days + 100 s
        clock.advance(step)
        seen.append(video_used())
    # 420 minutes + 0.5/s, capped at 600, back to 470 one 30-day period later.
    assert seen == [420 * 60, 470 * 60, 600 * 60, 470 * 60]


# --- auth and paths -----------------------------------------------------------------


@pytest.mark.parametrize("provider", list(KEYS))
def test_a_wrong_key_gets_a_401_in_the_vendors_own_shape(
    sim: VendorSimulator, provider: str
) -> None:
    response = get(sim, provider, WRONG_KEY)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED[provider]
    # The adapter reads it as an auth failure, as it would the real vendor's.
    with pytest.raises(PollError) as caught:
        parse(provider, response)
    assert caught.value.reason is Reason.AUTH
    # Refused requests are still requests: the key they carried is on record.
    assert sim.requests == [(path(provider), WRONG_KEY)]
    assert sim.request_count(WRONG_KEY) == 1


def test_a_key_is_good_only_at_its_own_vendor(sim: VendorSimulator) -> None:
    # Tornado and Piloterr both read `x-api-key`: the header fits, the account does not.
    response = get(sim, "piloterr", KEYS["tornado"])
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED["piloterr"]
    assert sim.request_count(KEYS["tornado"]) == 1


def test_pictory_takes_the_raw_key_not_a_bearer_token(sim: VendorSimulator) -> None:
    # docs/providers/pictory.md: `Authorization: <key>`, no "Bearer".
    url = sim.base_url("pictory") + PROVIDERS["pictory"].path
    response = httpx.get(url, headers={"Authorization": f"Bearer {KEYS['pictory']}"}, timeout=5)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED["pictory"]


def test_a_request_without_a_key_is_refused_and_recorded_without_one(
    sim: VendorSimulator,
) -> None:
    response = get(sim, "vertaaux", None)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED["vertaaux"]
    assert sim.requests == [(path("vertaaux"), None)]


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


@pytest.mark.parametrize(
    "url_path",
    [
        "/",
        "/pictoryapis/v1/quota",  # the vendor's path without the simulator's prefix
        "/nowhere/v1/usage",  # no such vendor
        "/tornado/v2/usage",  # another vendor's path under Tornado's prefix
        "/piloterr/usage",  # Piloterr's older documented path, not the one we poll
        "/vertaaux/api/v1/quota/extra",
    ],
)
def test_unknown_paths_are_404_and_not_recorded(sim: VendorSimulator, url_path: str) -> None:
    # Even with a key that is good somewhere: a wrong base_url must not look like auth.
    response = httpx.get(
        f"http://127.0.0.1:{sim.port}{url_path}",
        headers={"x-api-key": KEYS["tornado"], "Authorization": KEYS["pictory"]},
        timeout=5,
    )
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
