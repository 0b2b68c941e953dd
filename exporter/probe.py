"""`saas-quota-exporter probe`: poll one account once and show what was read.

Live: the account's request goes through the poller's own fetch path (`Poller._fetch`:
the same client, timeout, body cap, decoding and parse), and the answer's status,
headers and raw body are recorded on the way by an httpx response hook, so the table
shows exactly what the exporter would export. Offline (`--body FILE`): the same parse
on a recorded answer, so a definition can be written before any key exists.

Nothing printed holds the key: the config registers every key with the redactor, and
every vendor text (messages, problems) is scrubbed by the model.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import httpx

from exporter.model import MeterReading, PollError, Readings
from exporter.providers.base import Provider
from exporter.redaction import REDACTOR

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclass
class _Seen:
    """What the vendor answered, recorded by the response hook."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    encoded: bool = False


class _Tee(httpx.AsyncByteStream):
    """A response stream that keeps a copy of the bytes the poller reads."""

    def __init__(self, inner: Any, seen: _Seen) -> None:
        self._inner = inner
        self._seen = seen

    async def __aiter__(self) -> Any:
        async for chunk in self._inner:
            self._seen.chunks.append(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def run_probe(
    config_file: str | None,
    account_ref: str,
    body_file: str | None,
    status: int,
    headers_file: str | None,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    provider_name, _, account_name = account_ref.partition("/")
    if not provider_name or not account_name:
        print("probe: --account must be PROVIDER/ACCOUNT", file=sys.stderr)
        return EXIT_USAGE
    if body_file is not None:
        return _offline(provider_name, body_file, status, headers_file, out)
    if config_file is None:
        print("probe: --config.file is required unless --body is given", file=sys.stderr)
        return EXIT_USAGE
    from exporter.config import ConfigError, load_config

    try:
        config = load_config(config_file)
    except ConfigError as exc:
        print(f"{config_file}: {len(exc.problems)} config error(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_FAILED
    account = next((a for a in config.accounts if a.key == (provider_name, account_name)), None)
    if account is None:
        known = ", ".join(f"{a.provider}/{a.account}" for a in config.accounts) or "none"
        print(
            f"probe: no account {account_ref} in {config_file} (accounts: {known})", file=sys.stderr
        )
        return EXIT_USAGE
    return asyncio.run(_live(account, out))


async def _live(account: Any, out: TextIO) -> int:
    from exporter.poller import Poller
    from exporter.state import StateStore
    from exporter.transport import make_client

    seen = _Seen()

    async def hook(response: httpx.Response) -> None:
        seen.status = response.status_code
        seen.headers = {k.lower(): v for k, v in response.headers.items()}
        seen.encoded = bool(response.headers.get("content-encoding", "identity") != "identity")
        response.stream = _Tee(response.stream, seen)

    client = make_client()
    client.event_hooks["response"].append(hook)
    print(f"request: {account.adapter.method} {REDACTOR.scrub(account.url)}", file=out)
    async with client:
        poller = Poller(StateStore(), client)
        try:
            outcome: Readings | PollError = await poller._fetch(account)
        except PollError as error:
            outcome = error
    print(f"HTTP {seen.status if seen.status is not None else '(no answer)'}", file=out)
    body = b"".join(seen.chunks)
    absent: tuple[tuple[str, str], ...] = ()
    if isinstance(outcome, Readings) and not seen.encoded:
        absent = _absent(account.adapter, seen.status or 200, seen.headers, body)
    return _report(outcome, absent, out)


def _offline(name: str, body_file: str, status: int, headers_file: str | None, out: TextIO) -> int:
    from exporter.providers import PROVIDERS

    provider = PROVIDERS.get(name)
    if provider is None:
        print(
            f"probe: unknown provider {name!r}; valid: {', '.join(sorted(PROVIDERS))}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        with open(body_file, "rb") as handle:
            body = handle.read()
        headers: dict[str, str] = {}
        if headers_file is not None:
            with open(headers_file, encoding="utf-8") as handle:
                raw = json.load(handle)
            if not isinstance(raw, dict):
                raise ValueError("the headers file must hold a JSON object")
            headers = {str(k).lower(): str(v) for k, v in raw.items()}
    except (OSError, ValueError) as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"HTTP {status} (recorded)", file=out)
    outcome: Readings | PollError
    try:
        outcome = provider.parse(status, headers, body)
    except PollError as error:
        outcome = error
    absent = _absent(provider, status, headers, body) if isinstance(outcome, Readings) else ()
    return _report(outcome, absent, out)


def _absent(
    provider: Provider, status: int, headers: dict[str, str], body: bytes
) -> tuple[tuple[str, str], ...]:
    explain = getattr(provider.parse, "explain", None)
    if explain is None:
        return ()
    try:
        return tuple(explain(status, headers, body).absent)
    except PollError:
        return ()


def _report(outcome: Readings | PollError, absent: tuple[tuple[str, str], ...], out: TextIO) -> int:
    if isinstance(outcome, PollError):
        print(f"poll failed: {outcome.reason.value}: {outcome.message}", file=out)
        if outcome.retry_after is not None:
            print(f"retry after: {outcome.retry_after:g}s", file=out)
        return EXIT_FAILED
    rows: list[tuple[str, ...]] = [
        ("meter", "unit", "used", "limit", "remaining", "unlimited", "reset")
    ]
    rows += [_row(m) for m in outcome.meters]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
            file=out,
        )
    for label, value in outcome.account_info:
        print(f"info: {label}={value}", file=out)
    if outcome.api_key_expiry_timestamp is not None:
        print(f"key expiry: {_time(outcome.api_key_expiry_timestamp)}", file=out)
    if outcome.api_key_active is not None:
        print(f"key active: {'yes' if outcome.api_key_active else 'no'}", file=out)
    for window, rate in outcome.rate_limits:
        print(f"rate limit: {rate:.15g} per {window}", file=out)
    for meter, why in absent:
        print(f"absent: {meter}: {why}", file=out)
    for problem in outcome.problems:
        print(f"problem: {problem}", file=out)
    for warning in outcome.warnings:
        print(f"warning: {warning}", file=out)
    if outcome.problems and not outcome.meters:
        return EXIT_FAILED
    return EXIT_OK


def _row(m: MeterReading) -> tuple[str, ...]:
    def figure(value: float | None) -> str:
        return "-" if value is None else f"{value:.15g}"

    return (
        m.meter,
        m.unit,
        figure(m.used),
        figure(m.limit),
        figure(m.effective_remaining),
        "yes" if m.unlimited else "no",
        "-" if m.reset_timestamp is None else _time(m.reset_timestamp),
    )


def _time(stamp: float) -> str:
    try:
        return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{stamp:g}"
