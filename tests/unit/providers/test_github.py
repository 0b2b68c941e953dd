"""GitHub `GET /rate_limit` (exporter/providers/github.yaml), from recorded answers."""

from __future__ import annotations

from exporter.model import MeterReading, Reason
from exporter.providers import PROVIDERS
from tests.unit.providers.declared import error_case, meters, parse_case


def test_every_resource_is_a_meter_with_its_reset() -> None:
    readings = parse_case("github", "rate_limit")
    assert readings.problems == ()
    found = meters(readings)
    assert list(found) == [
        "core",
        "search",
        "graphql",
        "integration_manifest",
        "source_import",
        "code_scanning_upload",
        "actions_runner_registration",
        "scim",
        "dependency_snapshots",
        "code_search",
    ]
    assert found["core"] == MeterReading(
        "core", "requests", used=1, limit=5000, remaining=4999, reset_timestamp=1691591363
    )
    assert found["search"] == MeterReading(
        "search", "requests", used=12, limit=30, remaining=18, reset_timestamp=1691591091
    )


def test_older_answers_without_used_derive_it() -> None:
    found = meters(parse_case("github", "rate_limit_without_used"))
    assert found["graphql"] == MeterReading(
        "graphql", "requests", used=7, limit=5000, remaining=4993, reset_timestamp=1372700389
    )
    assert len(found) == 4


def test_errors() -> None:
    assert error_case("github", "error_401_bad_credentials").reason is Reason.AUTH
    limited = error_case("github", "error_403_rate_limited")
    assert limited.reason is Reason.RATE_LIMITED
    assert limited.retry_after == 60


def test_request() -> None:
    request = PROVIDERS["github"].request("ghp_secret0123", None)
    assert request.method == "GET"
    assert request.url == "https://api.github.com/rate_limit"
    assert request.headers == {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "Authorization": "Bearer ghp_secret0123",
    }
