"""structlog set-up: JSON, logfmt or console lines on stderr, with keys scrubbed out.

The scrubbing processor runs last before rendering, over every string in the event,
so a key that reaches a log call by any road (an exception text, a vendor echoing it
back) is replaced by `<redacted>`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Final, TextIO

import structlog

from exporter.redaction import REDACTOR

# `warn` as the Go exporters (promslog) spell it, an alias of `warning`.
LEVELS: Final = ("debug", "info", "warn", "warning", "error")
FORMATS: Final = ("json", "logfmt", "console")
_LEVEL_ALIASES: Final = {"warn": "warning"}


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return REDACTOR.scrub(value)
    if isinstance(value, dict):
        # Keys too: a vendor body logged as a dict may carry the key as a field name.
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, tuple):
        scrubbed = (_scrub(v) for v in value)
        # A namedtuple (urlsplit's result...) takes fields, not one iterable.
        return type(value)(*scrubbed) if hasattr(value, "_fields") else tuple(scrubbed)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return REDACTOR.scrub(str(value))


# Identifiers from the config, bound by the poller on every account's event: the
# adapter's fixed name and the account name the operator chose. Neither is vendor
# text, and both are shown as they are on `/` and as labels on /metrics. Any 8
# characters of a key are scrubbed (exporter.redaction), so a key that holds its
# vendor's or account's name (the demo's "demo-tornado-pipeline") would otherwise
# take that name out of every line about the account.
_NOT_SECRET: Final = frozenset({"provider", "account"})
# Lists of such identifiers ("pictory/marketing auth": provider/account and a
# `Reason` value), for one line about many accounts (the first poll round's).
_NOT_SECRET_LISTS: Final = frozenset({"failing_accounts"})


def _verbatim(key: str, value: Any) -> bool:
    if key in _NOT_SECRET:
        return isinstance(value, str)
    return (
        key in _NOT_SECRET_LISTS
        and isinstance(value, list | tuple)
        and all(isinstance(v, str) for v in value)
    )


def scrub_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return {
        key: value if _verbatim(key, value) else _scrub(value) for key, value in event_dict.items()
    }


def configure(level: str = "info", fmt: str = "console", stream: TextIO | None = None) -> None:
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    elif fmt == "logfmt":
        # The Go exporters' other format; time, level and message first, as theirs.
        renderer = structlog.processors.LogfmtRenderer(
            key_order=["timestamp", "level", "event"], drop_missing=True, bool_as_flag=False
        )
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            scrub_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[_LEVEL_ALIASES.get(level, level).upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: Any) -> Any:
    return structlog.get_logger("saas_quota_exporter").bind(**bound)
