"""Keeping API keys out of logs, errors, pages and metrics.

Keys travel as `Secret`, whose str() and repr() never show the value, and every key
the config loads is registered here so the log pipeline can scrub it from any text
that slipped through (a vendor echoing the key back in an error body, say).
"""

from __future__ import annotations

import threading
from typing import Final

REDACTED: Final = "<redacted>"
# Short strings are no secret worth scrubbing and would mangle ordinary text.
_MIN_SECRET_LENGTH: Final = 6


class Secret:
    """A string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class Redactor:
    """The set of known secrets, and scrubbing them out of text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()

    def register(self, *values: str) -> None:
        fresh = {v for v in values if len(v) >= _MIN_SECRET_LENGTH}
        with self._lock:
            self._secrets = self._secrets | fresh

    def scrub(self, text: str) -> str:
        secrets = self._secrets  # one consistent view, no lock on the hot path
        if not secrets:
            return text
        # Longest first, so a key that contains another key is removed whole.
        for secret in sorted(secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


# One process, one set of keys: the logging pipeline and the config loader share it.
REDACTOR: Final = Redactor()
