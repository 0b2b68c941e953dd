"""`--web.config.file`: TLS and basic auth in the exporter-toolkit format.

The same file every Go exporter accepts (prometheus/exporter-toolkit
docs/web-configuration.md), so operators reuse what they have:

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # mTLS
      client_ca_file: ca.crt
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...   # bcrypt hash

Options the toolkit has but Python's ssl module cannot honour the same way
(Go cipher-suite names, curve preferences) are rejected rather than ignored: a
security setting that silently does nothing is worse than an error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import bcrypt
import yaml

_TLS_VERSIONS: Final = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH: Final = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_TLS_KEYS: Final = frozenset(
    {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"}
)
_UNSUPPORTED_TLS_KEYS: Final = frozenset(
    {"cipher_suites", "curve_preferences", "prefer_server_cipher_suites", "client_allowed_sans"}
)
_TOP_KEYS: Final = frozenset({"tls_server_config", "basic_auth_users", "http_server_config"})
_HTTP_KEYS: Final = frozenset({"http2", "headers"})


class WebConfigError(Exception):
    pass


@dataclass(frozen=True)
class TLSSettings:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str | None = None


@dataclass
class WebConfig:
    """Implements exporter.web.WebSecurity."""

    tls: TLSSettings | None = None
    # user -> bcrypt hash
    users: dict[str, bytes] = field(default_factory=dict)
    _context: ssl.SSLContext | None = field(default=None, init=False, repr=False)
    # sha256(user, password) of credentials already verified: bcrypt is deliberately
    # slow, and a scrape every 15 s should not pay ~100 ms each time (exporter-toolkit
    # caches the same way).
    _verified: set[bytes] = field(default_factory=set, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.tls is not None:
            self._context = _build_context(self.tls)

    def ssl_context(self) -> ssl.SSLContext | None:
        return self._context

    def authorized(self, authorization: str | None) -> bool:
        if not self.users:
            return True
        if not authorization or not authorization.lower().startswith("basic "):
            return False
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        stored = self.users.get(user)
        # Check a dummy hash for unknown users so timing does not reveal who exists.
        hashed = stored if stored is not None else _DUMMY_HASH
        token = hashlib.sha256(b"\0".join((user.encode(), password.encode(), hashed))).digest()
        with self._lock:
            if token in self._verified:
                return stored is not None
        try:
            ok = bcrypt.checkpw(password.encode(), hashed)
        except ValueError:
            return False
        if ok and stored is not None:
            with self._lock:
                self._verified.add(token)
            return True
        return False


_DUMMY_HASH: Final = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=10))


def _build_context(tls: TLSSettings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    if tls.max_version:
        context.maximum_version = _TLS_VERSIONS[tls.max_version]
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(
            f"tls_server_config: cannot load cert_file/key_file: {_reason(exc)}"
        ) from None
    context.verify_mode = _CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(
                "tls_server_config.client_ca_file: cannot load"
                f" {tls.client_ca_file}: {_reason(exc)}"
            ) from None
    return context


def _reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def load_web_config(path: str | Path) -> WebConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WebConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise WebConfigError(f"{where}: YAML syntax error: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{path}: YAML error: {type(exc).__name__}") from None
    return parse_web_config(data or {}, base_dir=path.resolve().parent)


def parse_web_config(data: Any, base_dir: Path) -> WebConfig:
    problems: list[str] = []
    if not isinstance(data, dict):
        raise WebConfigError("the web config must be a mapping")
    for key in sorted(set(data) - _TOP_KEYS):
        problems.append(f"unknown key {key!r}; allowed: {', '.join(sorted(_TOP_KEYS))}")

    http = data.get("http_server_config") or {}
    if not isinstance(http, dict):
        problems.append("http_server_config: expected a mapping")
    else:
        for key in sorted(set(http) - _HTTP_KEYS):
            problems.append(f"http_server_config: unknown key {key!r}")
        if http.get("headers"):
            problems.append("http_server_config.headers: not supported by saas-quota-exporter")

    tls = _tls(data.get("tls_server_config"), base_dir, problems)
    users = _users(data.get("basic_auth_users"), problems)
    if problems:
        raise WebConfigError("; ".join(problems))
    return WebConfig(tls=tls, users=users)


def _tls(raw: Any, base_dir: Path, problems: list[str]) -> TLSSettings | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append("tls_server_config: expected a mapping")
        return None
    before = len(problems)
    for key in sorted(set(raw) - _TLS_KEYS):
        if key in _UNSUPPORTED_TLS_KEYS:
            problems.append(f"tls_server_config.{key}: not supported by saas-quota-exporter")
        else:
            problems.append(f"tls_server_config: unknown key {key!r}")

    def path(key: str) -> Path | None:
        value = raw.get(key)
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            problems.append(f"tls_server_config.{key}: expected a file path")
            return None
        p = Path(value)
        return p if p.is_absolute() else base_dir / p

    cert, key, ca = path("cert_file"), path("key_file"), path("client_ca_file")
    if cert is None or key is None:
        problems.append("tls_server_config: cert_file and key_file are both required")
    auth = raw.get("client_auth_type") or "NoClientCert"
    if auth not in _CLIENT_AUTH:
        problems.append(
            f"tls_server_config.client_auth_type: invalid {auth!r};"
            f" valid: {', '.join(_CLIENT_AUTH)}"
        )
    elif auth in ("RequireAndVerifyClientCert", "VerifyClientCertIfGiven") and ca is None:
        problems.append(f"tls_server_config: client_auth_type {auth} needs client_ca_file")
    versions = {}
    for name, default in (("min_version", "TLS12"), ("max_version", None)):
        value = raw.get(name) or default
        if value is not None and value not in _TLS_VERSIONS:
            problems.append(
                f"tls_server_config.{name}: invalid {value!r}; valid: {', '.join(_TLS_VERSIONS)}"
            )
        versions[name] = value
    if len(problems) > before or cert is None or key is None:
        return None
    return TLSSettings(
        cert_file=cert,
        key_file=key,
        client_auth_type=auth,
        client_ca_file=ca,
        min_version=versions["min_version"] or "TLS12",
        max_version=versions["max_version"],
    )


def _users(raw: Any, problems: list[str]) -> dict[str, bytes]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append("basic_auth_users: expected a mapping of user: bcrypt hash")
        return {}
    users: dict[str, bytes] = {}
    for user, hashed in raw.items():
        if not isinstance(user, str) or not user or ":" in user:
            problems.append(f"basic_auth_users: invalid user name {user!r}")
            continue
        # Never echo the hash itself: it is a credential too.
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            problems.append(f"basic_auth_users.{user}: not a bcrypt hash")
            continue
        users[user] = hashed.encode()
    return users
