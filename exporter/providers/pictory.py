"""Pictory: GET /pictoryapis/v1/quota with the raw key in `Authorization`.

The body is four `{used, limit}` entries for the current billing term; minutes are
exported as seconds. Pictory gives no remaining, period or reset, so remaining is
derived and no reset series exists (docs/providers/pictory.md).
"""

from __future__ import annotations

from typing import Any

from exporter.model import MeterReading, PollError, Readings, Reason
from exporter.providers.base import (
    FieldError,
    Headers,
    Provider,
    classify_http_error,
    decode_json,
    excerpt,
    gather,
    json_object,
    obj,
    quota_reading,
    unrecognised,
)

# vendor field -> (meter, unit, factor to the exported unit)
_METERS: dict[str, tuple[str, str, float]] = {
    "videoMinutes": ("video_seconds", "seconds", 60.0),
    "transcriptionMinutes": ("transcription_seconds", "seconds", 60.0),
    "elevenLabsVoiceOverMinutes": ("voiceover_seconds", "seconds", 60.0),
    "aiCredits": ("ai_credits", "credits", 1.0),
}


def parse(status: int, headers: Headers, body: bytes) -> Readings:
    if status != 200:
        raise _error(status, headers, body)
    data = json_object(status, body)
    parts = {field: _meter_part(data, field) for field in _METERS}
    results, problems = gather(parts)
    meters = tuple(m for m in results.values() if m is not None)
    if not meters and not problems:
        raise unrecognised(status, body, "no quota entries")
    return Readings(meters=meters, problems=problems)


def _meter_part(data: dict[str, Any], field: str) -> Any:
    def build() -> MeterReading | None:
        meter, unit, factor = _METERS[field]
        entry = obj(data, field)
        if entry is None:
            # The docs mark all four as required; a missing one is an absent meter.
            return None
        # The shared reading (base.quota_reading): numbers, scaling to base units and
        # the model's checks. Pictory gives no remaining, and nothing to derive.
        reading = quota_reading(
            meter,
            unit,
            used=entry.get("used"),
            limit=entry.get("limit"),
            where=field,
            scale=factor,
            derive=False,
        )
        if reading is None:
            raise FieldError(f"{field}: neither used nor limit given")
        return reading

    return build


def _error(status: int, headers: Headers, body: bytes) -> PollError:
    # Cloudflare in front of Pictory answers bot-like clients with a plain-text 403
    # "error code: 1010"; the fix is on our side (User-Agent), so say so.
    if status == 403 and decode_json(body) is None and b"1010" in body:
        return PollError(
            Reason.FORBIDDEN,
            "HTTP 403: blocked by Cloudflare (error 1010, bot signature); "
            "check that the User-Agent is not overridden by a proxy",
            status=status,
            body_excerpt=excerpt(body),
        )
    return classify_http_error(status, headers, body)


PROVIDER = Provider(
    name="pictory",
    default_base_url="https://api.pictory.ai",
    path="/pictoryapis/v1/quota",
    auth_header="Authorization",
    parse=parse,
    docs_url="https://docs.pictory.ai/api-reference/account/get-quota",
)
