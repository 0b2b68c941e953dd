"""One scenario for the simulator's tests: keys at every simulated vendor, the meters
behind them, what each parser must make of the answers, and requests as the exporter
sends them.

The demo's simulator (tests/unit/demo/test_simulator.py) and its fault-injecting extension
(tests/support/test_simulator.py) are checked against the same accounts and clock.
"""

from __future__ import annotations

import socket

import httpx

from exporter.demo.simulator import DAY, GB, SimAccount, SimMeter, VendorSimulator
from exporter.model import MeterReading, Readings
from exporter.providers import PROVIDERS

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
    # Two shipped declarative definitions (exporter/providers/*.yaml).
    "github": "ghp_sim_key_0006",
    "openrouter": "sk-or-v1-sim-key-0007",
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
    SimAccount(
        "github",
        KEYS["github"],
        {
            # Hourly and per-minute windows: each resets where its meter wraps.
            "core": SimMeter(limit=5000, start=1000, rate=1.0, period=3600),
            "search": SimMeter(limit=30, start=2, rate=0.125, period=60),
        },
    ),
    SimAccount(
        "openrouter", KEYS["openrouter"], {"credits": SimMeter(limit=100, start=40, rate=0.25)}
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
    # Whole requests; each window resets at its next wrap (core: T0 + 1 h; search at
    # ELAPSED is 40 s into its third minute: T0 + 120 s).
    "github": Readings(
        meters=(
            MeterReading(
                "core", "requests", used=1100, limit=5000, remaining=3900, reset_timestamp=T0 + 3600
            ),
            MeterReading(
                "search", "requests", used=7, limit=30, remaining=23, reset_timestamp=T0 + 120
            ),
        )
    ),
    # This month's usage against the monthly limit; all-time adds the 250 spent before.
    "openrouter": Readings(
        meters=(
            MeterReading("credits", "credits", used=65, limit=100, remaining=35),
            MeterReading("credits_all_time", "credits", used=315),
        ),
        account_info=(("free_tier", "false"), ("limit_reset", "monthly")),
    ),
}

# The 401 bodies docs/providers/ documents, one envelope per vendor.
UNAUTHORIZED = {
    "pictory": {"message": "Unauthorized"},
    "tornado": {"error": "Invalid API Key"},
    "piloterr": {"error": "Invalid API Key"},
    "vidnavigator": {"status": "error", "error": "unauthorized", "message": "Invalid API key"},
    "vertaaux": {"error": "unauthorized", "message": "Invalid or missing API key"},
    "github": {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
    "openrouter": {"error": {"message": "No auth credentials found", "code": 401}},
}


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


UNKNOWN_PATHS = [
    "/",
    "/pictoryapis/v1/quota",  # the vendor's path without the simulator's prefix
    "/nowhere/v1/usage",  # no such vendor
    "/tornado/v2/usage",  # another vendor's path under Tornado's prefix
    "/piloterr/usage",  # Piloterr's older documented path, not the one we poll
    "/vertaaux/api/v1/quota/extra",
]


def get_unknown(sim: VendorSimulator, url_path: str) -> httpx.Response:
    """A GET of a path no vendor serves, with keys that are good somewhere: a wrong
    base_url must not look like auth."""
    return httpx.get(
        f"http://127.0.0.1:{sim.port}{url_path}",
        headers={"x-api-key": KEYS["tornado"], "Authorization": KEYS["pictory"]},
        timeout=5,
    )
