"""Twilio balance (exporter/providers/twilio.yaml): a params path, basic auth, a string."""

from __future__ import annotations

import base64

from exporter.model import MeterReading, Reason
from exporter.providers import PROVIDERS
from tests.unit.providers.declared import error_case, parse_case

SID = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"


def test_balance_is_a_string_number() -> None:
    readings = parse_case("twilio", "balance")
    assert readings.meters == (MeterReading("balance", "currency", remaining=0.05),)
    assert readings.account_info == (("currency", "USD"),)
    assert parse_case("twilio", "balance_support_article").meters[0].remaining == 12.29


def test_a_negative_balance_costs_the_meter_only() -> None:
    readings = PROVIDERS["twilio"].parse(200, {}, b'{"balance": "-3.10", "currency": "USD"}')
    assert readings.meters == ()
    assert readings.account_info == (("currency", "USD"),)
    assert len(readings.problems) == 1
    assert "negative" in readings.problems[0]


def test_request_puts_the_sid_in_the_path_and_basic_auth() -> None:
    provider = PROVIDERS["twilio"]
    assert provider.params == ("account_sid",)
    request = provider.request("auth-token-0123", None, {"account_sid": SID}, "main")
    assert request.url == f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Balance.json"
    token = base64.b64encode(f"{SID}:auth-token-0123".encode()).decode()
    assert request.headers == {"Authorization": f"Basic {token}"}
    assert "auth-token" not in repr(request)


def test_a_param_cannot_change_the_endpoint() -> None:
    request = PROVIDERS["twilio"].request("t", None, {"account_sid": "../x?y=1"}, "a")
    assert request.url.endswith("/Accounts/..%2Fx%3Fy%3D1/Balance.json")


def test_errors() -> None:
    assert error_case("twilio", "error_401_authenticate").reason is Reason.AUTH
