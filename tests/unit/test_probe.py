"""`saas-quota-exporter probe`: live over a real local HTTP server, and offline."""

from __future__ import annotations

import base64
import http.server
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.probe import run_probe
from tests.unit.providers.fixtures import FIXTURES, recorded

TOKEN = "twilio_token_0123456789abcdef"
SID = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"


class _Vendor(http.server.BaseHTTPRequestHandler):
    """Answers Twilio's balance with the recorded body, if the basic auth is right."""

    seen: list[tuple[str, str | None]] = []  # noqa: RUF012 - shared test record

    def do_GET(self) -> None:
        _Vendor.seen.append((self.path, self.headers.get("Authorization")))
        expected = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        answer = recorded(
            "twilio",
            "balance"
            if self.headers.get("Authorization") == expected
            else "error_401_authenticate",
        )
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def vendor() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Vendor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Vendor.seen.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _config(tmp_path: Path, base_url: str, token: str = TOKEN) -> str:
    path = tmp_path / "exporter.yml"
    path.write_text(
        "accounts:\n"
        "  - provider: twilio\n"
        "    account: main\n"
        f"    api_key: {token}\n"
        f"    base_url: {base_url}\n"
        f"    params: {{account_sid: {SID}}}\n"
    )
    return str(path)


def test_live_probe_polls_once_and_prints_the_readings(tmp_path: Path, vendor: str) -> None:
    out = io.StringIO()
    assert run_probe(_config(tmp_path, vendor), "twilio/main", None, 200, None, out) == 0
    text = out.getvalue()
    assert _Vendor.seen == [
        (
            f"/2010-04-01/Accounts/{SID}/Balance.json",
            "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode(),
        )
    ]
    assert "HTTP 200" in text
    assert "balance  currency  -     -      0.05" in text
    assert "info: currency=USD" in text
    assert TOKEN not in text


def test_live_probe_of_a_failing_poll_exits_non_zero(tmp_path: Path, vendor: str) -> None:
    out = io.StringIO()
    wrong = "wrong_token_0123456789abcdef"
    assert run_probe(_config(tmp_path, vendor, wrong), "twilio/main", None, 200, None, out) == 1
    text = out.getvalue()
    assert "HTTP 401" in text
    assert "poll failed: auth: HTTP 401: Authenticate" in text
    assert wrong not in text


def test_offline_probe_shows_problems_and_absent_meters(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"character_count": "many", "character_limit": 10}))
    out = io.StringIO()
    code = run_probe(None, "deepl/x", str(body), 200, None, out)
    text = out.getvalue()
    assert code == 1  # nothing usable: the poll would fail
    assert "problem: meter characters.used: expected a number, got 'many'" in text
    assert "absent: api_key_characters: none of path api_key_character_count" in text


def test_offline_probe_of_a_recorded_case(capsys: pytest.CaptureFixture[str]) -> None:
    from exporter.cli import main

    folder = FIXTURES / "github" / "error_403_rate_limited"
    code = main(
        [
            "probe",
            "--account",
            "github/x",
            "--body",
            str(folder / "body.json"),
            "--status",
            "403",
            "--headers",
            str(folder / "headers.json"),
        ]
    )
    assert code == 1
    assert "poll failed: rate_limited: HTTP 403: API rate limit exceeded" in capsys.readouterr().out


def test_unknown_account_is_a_usage_error(tmp_path: Path) -> None:
    assert run_probe(_config(tmp_path, "http://127.0.0.1:9"), "twilio/other", None, 200, None) == 2
