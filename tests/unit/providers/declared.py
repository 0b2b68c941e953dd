"""Shared helpers for the shipped declarative providers' tests."""

from __future__ import annotations

from exporter.model import MeterReading, PollError, Readings
from exporter.providers import PROVIDERS
from tests.unit.providers.fixtures import recorded


def parse_case(vendor: str, case: str) -> Readings:
    answer = recorded(vendor, case)
    return PROVIDERS[vendor].parse(answer.status, answer.headers, answer.body)


def error_case(vendor: str, case: str) -> PollError:
    answer = recorded(vendor, case)
    try:
        PROVIDERS[vendor].parse(answer.status, answer.headers, answer.body)
    except PollError as error:
        return error
    raise AssertionError(f"{vendor}/{case} parsed")


def meters(readings: Readings) -> dict[str, MeterReading]:
    return {m.meter: m for m in readings.meters}
