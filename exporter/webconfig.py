"""`--web.config.file`: TLS and basic auth in the exporter-toolkit format.

The same file every Go exporter accepts (prometheus/exporter-toolkit
docs/web-configuration.md), so operators reuse what they have:

    tls_server_config:
      cert_file: server.crt          # relative paths: against this file's directory
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # mTLS
      client_ca_file: ca.crt
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

Options the toolkit has but Python's ssl module cannot honour the same way are
rejected rather than ignored: a security setting that silently does nothing is
worse than an error. That covers Go cipher-suite and curve names,
client_allowed_sans, inline PEM (`cert`, `key`, `client_ca`), `rate_limit`,
`http_server_config.headers`, and the two client-auth modes that accept a
certificate without verifying it (RequestClientCert, RequireAnyClientCert):
OpenSSL as exposed by Python verifies every client certificate it accepts.

Errors name the key and the file; they never contain a password, a hash or
key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import bcrypt
import yaml
from yaml.nodes import Node

from exporter.yamlsafe import (
    MAX_CONFIG_BYTES,
    FileReadError,
    LimitedLoader,
    read_limited,
    yaml_message,
)

_TLS_VERSIONS: Final = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH: Final = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNVERIFIED_CLIENT_AUTH: Final = frozenset(
    {"RequestClientCert", "RequireAnyClientCert", "RequireClientCert"}
)
_TLS_KEYS: Final = frozenset(
    {
        "cert_file",
        "key_file",
        "client_auth_type",
        "client_ca_file",
        "min_version",
        "max_version",
        "prefer_server_cipher_suites",
    }
)
_INLINE_PEM_KEYS: Final = {"cert": "cert_file", "key": "key_file", "client_ca": "client_ca_file"}
# Lists whose empty value means "Go's default", which is harmless to accept.
_UNSUPPORTED_TLS_LISTS: Final = frozenset(
    {"cipher_suites", "curve_preferences", "client_allowed_sans"}
)
_TOP_KEYS: Final = frozenset({"tls_server_config", "basic_auth_users", "http_server_config"})
_UNSUPPORTED_TOP_KEYS: Final = frozenset({"rate_limit"})
_HTTP_KEYS: Final = frozenset({"http2", "headers"})
# What Go's bcrypt.Cost accepts: $2a$, $2b$ or $2y$, cost 04..31, 22 + 31 characters.
_BCRYPT_HASH: Final = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_BCRYPT_HINT: Final = "generate one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"
# bcrypt only ever looked at the first 72 bytes; htpasswd and Go compare the same way.
_BCRYPT_MAX_PASSWORD: Final = 72
# Checked for unknown users so the response time does not reveal who exists.
_DUMMY_HASH: Final = b"$2b$10$1lhb7KjWmv/S1yuelrqWbu9hq7fxE8LQdFofLnEfRJ11TMDHcCXEW"


class WebConfigError(Exception):
    """An invalid web config; `problems` lists every problem found, each with its key."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems: tuple[str, ...] = (problems,) if isinstance(problems, str) else (*problems,)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class TLSSettings:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    prefer_server_cipher_suites: bool = True


@dataclass(eq=False)
class WebConfig:
    """Implements exporter.web.WebSecurity; safe to use from many threads."""

    tls: TLSSettings | None = None
    # user -> bcrypt hash; kept out of repr so it never reaches a log line.
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    _context: ssl.SSLContext | None = field(default=None, init=False, repr=False)
    # Digests of (user, password, hash) already verified: bcrypt is deliberately
    # slow, and a scrape every 15 s should not pay ~70 ms each time (the
    # exporter-toolkit caches the same way). Only successes are kept, so the set
    # is bounded by the configured users and cannot be grown by guessing.
    _verified: set[bytes] = field(default_factory=set, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.tls is not None:
            context, problems = _build_context(self.tls)
            if problems:
                raise WebConfigError(problems)
            self._context = context

    def ssl_context(self) -> ssl.SSLContext | None:
        return self._context

    def authorized(self, authorization: str | None) -> bool:
        """Whether an Authorization header value grants access (always, without users)."""
        if not self.users:
            return True
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        stored = self.users.get(user)
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


# --- loading and validation -----------------------------------------------------------


class _StrictLoader(LimitedLoader):
    """safe_load that rejects duplicate keys (Go's yaml.UnmarshalStrict does too).

    Within the depth and alias limits of LimitedLoader, and with a position for
    values PyYAML's constructors reject with a bare ValueError (`2001-02-30` as a
    timestamp, an integer of more digits than Python converts).
    """

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            if isinstance(exc, yaml.YAMLError):
                raise
            kind = node.tag.rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"invalid {kind} value", node.start_mark
            ) from None


class _DuplicateKey(yaml.constructor.ConstructorError):
    """Our own message: it quotes a key (a section or a user name), never a value."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue  # unhashable; construct_mapping reports it
        if duplicate:
            raise _DuplicateKey(None, None, f"duplicate key {key!r}", key_node.start_mark)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_web_config(path: str | Path) -> WebConfig:
    path = Path(path)
    try:
        text = read_limited(path, MAX_CONFIG_BYTES).decode("utf-8")
    except FileReadError as exc:
        raise WebConfigError(f"cannot read {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise WebConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_web_config_text(text, path)


def parse_web_config_text(text: str, path: Path) -> WebConfig:
    """Decode and validate web config text; `path` names it and anchors relative paths."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        # PyYAML's own messages quote what they found, which may be a hash or password.
        message = exc.problem if isinstance(exc, _DuplicateKey) else yaml_message(exc)
        raise WebConfigError(f"{where}: invalid YAML: {message}") from None
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{path}: invalid YAML: {type(exc).__name__}") from None
    return parse_web_config({} if data is None else data, base_dir=path.resolve().parent)


def parse_web_config(data: Any, base_dir: Path) -> WebConfig:
    """Validate a decoded web config; relative file paths are resolved against base_dir."""
    if not isinstance(data, dict):
        raise WebConfigError(f"the web config must be a mapping, not {_kind(data)}")
    problems: list[str] = []
    for key in sorted(set(data) - _TOP_KEYS, key=str):
        if key in _UNSUPPORTED_TOP_KEYS:
            problems.append(f"{key}: not supported by saas-quota-exporter")
        else:
            problems.append(f"unknown key {key!r}; allowed: {', '.join(sorted(_TOP_KEYS))}")
    _http(data.get("http_server_config"), problems)
    tls = _tls(data.get("tls_server_config"), base_dir, problems)
    users = _users(data.get("basic_auth_users"), problems)
    if problems:
        if tls is not None:
            # Report unreadable files in the same run as everything else.
            problems.extend(_build_context(tls)[1])
        raise WebConfigError(problems)
    return WebConfig(tls=tls, users=users)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def _http(raw: Any, problems: list[str]) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict):
        problems.append(f"http_server_config: expected a mapping, not {_kind(raw)}")
        return
    for key in sorted(set(raw) - _HTTP_KEYS, key=str):
        problems.append(f"http_server_config: unknown key {key!r}")
    # http2 has no effect here (HTTP/1.1 only), which is what http2: false asks
    # for and harmless for true: clients negotiate down.
    if "http2" in raw and not isinstance(raw["http2"], bool):
        problems.append("http_server_config.http2: expected true or false")
    if raw.get("headers"):
        problems.append("http_server_config.headers: not supported by saas-quota-exporter")


def _tls(raw: Any, base_dir: Path, problems: list[str]) -> TLSSettings | None:
    if raw is None or raw == {}:
        return None
    if not isinstance(raw, dict):
        problems.append(f"tls_server_config: expected a mapping, not {_kind(raw)}")
        return None
    before = len(problems)
    for key in sorted(set(raw) - _TLS_KEYS, key=str):
        if key in _INLINE_PEM_KEYS:
            problems.append(
                f"tls_server_config.{key}: inline PEM is not supported by"
                f" saas-quota-exporter; use {_INLINE_PEM_KEYS[key]}"
            )
        elif key in _UNSUPPORTED_TLS_LISTS:
            if raw[key]:
                problems.append(f"tls_server_config.{key}: not supported by saas-quota-exporter")
        else:
            problems.append(f"tls_server_config: unknown key {key!r}")

    mistyped: set[str] = set()

    def path(key: str) -> Path | None:
        value = raw.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            problems.append(f"tls_server_config.{key}: expected a file path")
            mistyped.add(key)
            return None
        p = Path(value)
        return p if p.is_absolute() else base_dir / p

    cert, key, ca = path("cert_file"), path("key_file"), path("client_ca_file")
    for name, value in (("cert_file", cert), ("key_file", key)):
        if value is None and name not in mistyped:
            problems.append(f"tls_server_config.{name}: required")

    auth = raw.get("client_auth_type") or "NoClientCert"
    if not isinstance(auth, str) or (
        auth not in _CLIENT_AUTH and auth not in _UNVERIFIED_CLIENT_AUTH
    ):
        problems.append(
            f"tls_server_config.client_auth_type: invalid {auth!r};"
            f" valid: {', '.join(_CLIENT_AUTH)}"
        )
    elif auth in _UNVERIFIED_CLIENT_AUTH:
        problems.append(
            f"tls_server_config.client_auth_type: {auth} (a client certificate accepted"
            " without verification) is not supported by saas-quota-exporter;"
            " use RequireAndVerifyClientCert with client_ca_file"
        )
    elif auth != "NoClientCert" and ca is None and "client_ca_file" not in mistyped:
        problems.append(f"tls_server_config: client_auth_type {auth} needs client_ca_file")
    elif auth == "NoClientCert" and ca is not None:
        # Go refuses this too: a CA file that checks nothing looks like mTLS but is not.
        problems.append(
            "tls_server_config: client_ca_file is set but client_auth_type is NoClientCert;"
            " set client_auth_type: RequireAndVerifyClientCert"
        )

    versions: dict[str, str] = {}
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        version = raw.get(name) or default
        if not isinstance(version, str) or version not in _TLS_VERSIONS:
            problems.append(
                f"tls_server_config.{name}: invalid {version!r}; valid: {', '.join(_TLS_VERSIONS)}"
            )
        else:
            versions[name] = version
    low, high = versions.get("min_version"), versions.get("max_version")
    if low and high and _TLS_VERSIONS[low] > _TLS_VERSIONS[high]:
        problems.append(f"tls_server_config: min_version {low} is above max_version {high}")

    prefer = raw.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        problems.append("tls_server_config.prefer_server_cipher_suites: expected true or false")

    if len(problems) > before or cert is None or key is None or not low or not high:
        return None
    return TLSSettings(
        cert_file=cert,
        key_file=key,
        client_auth_type=auth,
        client_ca_file=ca,
        min_version=low,
        max_version=high,
        prefer_server_cipher_suites=bool(prefer),
    )


def _users(raw: Any, problems: list[str]) -> dict[str, bytes]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(
            f"basic_auth_users: expected a mapping of user: bcrypt hash, not {_kind(raw)}"
        )
        return {}
    users: dict[str, bytes] = {}
    for user, hashed in raw.items():
        if not isinstance(user, str) or not user:
            problems.append(f"basic_auth_users: invalid user name {user!r}")
            continue
        if ":" in user:
            # "user:password" is a likely mistake here; do not echo what follows ':'.
            name = user.partition(":")[0]
            problems.append(f"basic_auth_users: user name {name!r}... must not contain ':'")
            continue
        # Never echo the value: it is a credential too, or even a plain password.
        if not isinstance(hashed, str) or not _BCRYPT_HASH.fullmatch(hashed):
            problems.append(f"basic_auth_users.{user}: not a bcrypt hash; {_BCRYPT_HINT}")
            continue
        users[user] = hashed.encode()
    return users


# --- TLS context ----------------------------------------------------------------------


def _build_context(tls: TLSSettings) -> tuple[ssl.SSLContext | None, list[str]]:
    """The server context, or the problems with the files (each naming key and path)."""
    problems: list[str] = []
    cert = _read_pem(
        "cert_file", tls.cert_file, b"-----BEGIN CERTIFICATE-----", "certificate", problems
    )
    key = _read_pem("key_file", tls.key_file, b"PRIVATE KEY-----", "private key", problems)
    if key is not None and (b"ENCRYPTED PRIVATE KEY" in key or b"Proc-Type: 4,ENCRYPTED" in key):
        problems.append(
            f"tls_server_config.key_file: {tls.key_file} is encrypted;"
            " the web config has no passphrase, use an unencrypted key"
        )
    if tls.client_ca_file is not None:
        _read_pem(
            "client_ca_file",
            tls.client_ca_file,
            b"-----BEGIN CERTIFICATE-----",
            "certificate",
            problems,
        )
    if problems or cert is None or key is None:
        return None, problems

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    context.maximum_version = _TLS_VERSIONS[tls.max_version]
    if not tls.prefer_server_cipher_suites:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        # The callback stops OpenSSL from prompting on the terminal for a passphrase.
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_passphrase)
    except _PassphraseNeeded:
        return None, [f"tls_server_config.key_file: {tls.key_file} is encrypted"]
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            message = f"key_file {tls.key_file} does not match cert_file {tls.cert_file}"
        else:
            message = f"cannot load cert_file {tls.cert_file} and key_file {tls.key_file}"
            message += f": {exc.reason or exc.strerror or 'invalid PEM'}"
        return None, [f"tls_server_config: {message}"]
    except OSError as exc:
        return None, [f"tls_server_config: cannot load cert_file/key_file: {exc.strerror}"]
    context.verify_mode = _CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        except (OSError, ssl.SSLError) as exc:
            reason = exc.reason if isinstance(exc, ssl.SSLError) else exc.strerror
            return None, [
                f"tls_server_config.client_ca_file: cannot load {tls.client_ca_file}: {reason}"
            ]
    return context, []


class _PassphraseNeeded(Exception):
    pass


def _no_passphrase() -> bytes:
    raise _PassphraseNeeded


def _read_pem(key: str, path: Path, marker: bytes, what: str, problems: list[str]) -> bytes | None:
    try:
        # Bounded and non-blocking like every file a reload reads (a FIFO, /dev/zero).
        data = read_limited(path, MAX_CONFIG_BYTES)
    except FileReadError as exc:
        problems.append(f"tls_server_config.{key}: cannot read {path}: {exc}")
        return None
    if marker not in data:
        problems.append(f"tls_server_config.{key}: no PEM {what} in {path}")
        return None
    return data
