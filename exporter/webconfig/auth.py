"""The basic-auth half of the web config: the per-request check against bcrypt hashes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import threading
from collections.abc import Mapping
from typing import Final

import bcrypt

# What Go's bcrypt.Cost accepts: $2a$, $2b$ or $2y$, cost 04..31, 22 + 31 characters.
BCRYPT_HASH: Final = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
BCRYPT_HINT: Final = "generate one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"
# bcrypt only ever looked at the first 72 bytes; htpasswd and Go compare the same way.
_BCRYPT_MAX_PASSWORD: Final = 72
# Checked for unknown users so the response time does not reveal who exists.
_DUMMY_HASH: Final = b"$2b$10$1lhb7KjWmv/S1yuelrqWbu9hq7fxE8LQdFofLnEfRJ11TMDHcCXEW"


class BasicAuth:
    """`Authorization` header values checked against user -> bcrypt hash; thread-safe."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        # Digests of (user, password, hash) already verified: bcrypt is deliberately
        # slow, and a scrape every 15 s should not pay ~70 ms each time (the
        # exporter-toolkit caches the same way). Only successes are kept, so the set
        # is bounded by the configured users and cannot be grown by guessing.
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        # Never the hashes: a repr may reach a log line.
        return f"BasicAuth(users={len(self._users)})"

    def authorized(self, authorization: str | None) -> bool:
        """Whether an Authorization header value grants access (always, without users)."""
        if not self._users:
            return True
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        stored = self._users.get(user)
        hashed = stored if stored is not None else _DUMMY_HASH
        token = _cache_token(user.encode(), password, hashed)
        with self._lock:
            if token in self._verified:
                # Only tokens of configured users are ever added.
                return True
        try:
            ok = bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], hashed)
        except ValueError:
            return False
        if ok and stored is not None:
            with self._lock:
                self._verified.add(token)
            return True
        return False


def _basic_credentials(authorization: str | None) -> tuple[str, bytes] | None:
    """(user, password) from `Basic base64(user:password)`, or None when malformed."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        user_bytes, sep, password = decoded.partition(b":")
        user = user_bytes.decode()
    except (binascii.Error, ValueError):
        return None
    return (user, password) if sep else None


def _cache_token(*parts: bytes) -> bytes:
    # Length-prefixed so no two different (user, password) splits share a token.
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()
