"""Reading a web config file: every problem at once, each with `file:line:col`.

    tls_server_config:
      cert_file: server.crt          # relative paths: against this file's directory
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # mTLS
      client_ca_file: ca.crt
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

Strict like Go's yaml.UnmarshalStrict: unknown and duplicate keys are errors. Options
the toolkit has but Python's ssl module cannot honour the same way are rejected rather
than ignored: a security setting that silently does nothing is worse than an error.
That covers Go cipher-suite and curve names, client_allowed_sans, inline PEM (`cert`,
`key`, `client_ca`), `rate_limit`, `http_server_config.headers`, and the client-auth
modes that accept a certificate without verifying it (RequestClientCert,
RequireAnyClientCert): OpenSSL as exposed by Python verifies every client certificate
it accepts.

Problems name the file, position and key; they never contain a password, a hash or
key material.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from exporter.webconfig.auth import BCRYPT_HASH, BCRYPT_HINT
from exporter.webconfig.security import WebConfig, WebConfigError
from exporter.webconfig.tls import CLIENT_AUTH, TLS_VERSIONS, TLSSettings, build_context
from exporter.yamlreader import (
    MAX_SMALL_CONFIG_BYTES,
    DocumentError,
    Fields,
    FileReadError,
    Reader,
    is_null,
    kind,
    read_limited,
    shown_choice,
)

_UNVERIFIED_CLIENT_AUTH: Final = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
_TOP_KEYS: Final = ("basic_auth_users", "http_server_config", "tls_server_config")
_UNSUPPORTED_TOP_KEYS: Final = ("rate_limit",)
_TLS_KEYS: Final = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
)
_INLINE_PEM_KEYS: Final = {"cert": "cert_file", "key": "key_file", "client_ca": "client_ca_file"}
# Lists whose empty value means "Go's default", which is harmless to accept.
_UNSUPPORTED_TLS_LISTS: Final = ("cipher_suites", "curve_preferences", "client_allowed_sans")
_HTTP_KEYS: Final = ("headers", "http2")
_UNSUPPORTED: Final = "not supported by saas-quota-exporter"


def load_web_config(path: str | Path) -> WebConfig:
    path = Path(path)
    try:
        text = read_limited(path, MAX_SMALL_CONFIG_BYTES).decode("utf-8")
    except FileReadError as exc:
        raise WebConfigError(f"cannot read {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise WebConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_web_config_text(text, path)


def parse_web_config_text(text: str, path: Path) -> WebConfig:
    """Validate web config text; `path` names it and anchors relative paths."""
    reader = Reader(str(path))
    try:
        root = reader.compose(text)
    except DocumentError as exc:
        raise WebConfigError(f"{exc.where}: invalid YAML: {exc.message}") from None
    if root is None or is_null(root):
        return WebConfig()
    return _Schema(reader, path.resolve().parent).load(root)


def _given(node: Node | None) -> Node | None:
    """The node, or None for absent, `key:` alone and `key: ""` (the toolkit's unset)."""
    if node is None or is_null(node):
        return None
    if isinstance(node, ScalarNode) and node.value == "" and node.tag.endswith(":str"):
        return None
    return node


def _empty(node: Node) -> bool:
    """What Go's zero value looks like written out: nothing, "", false, [] or {}."""
    if isinstance(node, MappingNode | SequenceNode):
        return not node.value
    return _given(node) is None or (node.tag.endswith(":bool") and node.value.lower() == "false")


class _Schema:
    def __init__(self, reader: Reader, base_dir: Path) -> None:
        self.reader = reader
        self.base_dir = base_dir
        # tls_server_config's values by key, to point file problems at their line.
        self.tls_fields = Fields()

    def load(self, root: Node) -> WebConfig:
        reader = self.reader
        if not isinstance(root, MappingNode):
            raise WebConfigError(
                f"{reader.position(root)}the web config must be a mapping, got {kind(root)}"
            )
        top = reader.mapping(root, "", _TOP_KEYS, handled=_UNSUPPORTED_TOP_KEYS)
        if top is None:  # not reached: root is a mapping
            raise WebConfigError(reader.texts())
        for key in _UNSUPPORTED_TOP_KEYS:
            if key in top:
                reader.problem(top.key_node(key), key, _UNSUPPORTED)
        users = self.users(top.get("basic_auth_users"))
        self.http(top.get("http_server_config"))
        tls_node = top.get("tls_server_config")
        tls = self.tls(tls_node)
        context = None
        if tls is not None and tls_node is not None:
            # Checked even when something else is wrong: every problem in one run.
            context, file_problems = build_context(tls)
            for problem in file_problems:
                reader.problem(self.tls_fields.get(problem.key) or tls_node, "", problem.text)
        if reader.problems:
            raise WebConfigError(reader.texts())
        return WebConfig(tls=tls, users=users, context=context)

    def http(self, node: Node | None) -> None:
        if node is None or is_null(node):
            return
        fields = self.reader.mapping(node, "http_server_config", _HTTP_KEYS)
        if fields is None:
            return
        # http2 has no effect here (HTTP/1.1 only), which is what http2: false asks
        # for and harmless for true: clients negotiate down.
        if "http2" in fields:
            self.reader.boolean(fields["http2"], "http_server_config.http2")
        if "headers" in fields and not _empty(fields["headers"]):
            self.reader.problem(
                fields.key_node("headers"), "http_server_config.headers", _UNSUPPORTED
            )

    def tls(self, node: Node | None) -> TLSSettings | None:
        reader = self.reader
        if node is None or is_null(node) or (isinstance(node, MappingNode) and not node.value):
            return None
        before = len(reader.problems)
        fields = reader.mapping(
            node,
            "tls_server_config",
            _TLS_KEYS,
            handled=(*_INLINE_PEM_KEYS, *_UNSUPPORTED_TLS_LISTS),
        )
        if fields is None:
            return None
        self.tls_fields = fields
        for key, instead in _INLINE_PEM_KEYS.items():
            if key in fields:
                reader.problem(
                    fields.key_node(key),
                    f"tls_server_config.{key}",
                    f"inline PEM is {_UNSUPPORTED}; use {instead}",
                )
        for key in _UNSUPPORTED_TLS_LISTS:
            if key in fields and not _empty(fields[key]):
                reader.problem(fields.key_node(key), f"tls_server_config.{key}", _UNSUPPORTED)

        cert = self.path(fields, "cert_file", node, required=True)
        key_file = self.path(fields, "key_file", node, required=True)
        ca = self.path(fields, "client_ca_file", node)
        ca_mistyped = ca is None and _given(fields.get("client_ca_file")) is not None

        auth_node = _given(fields.get("client_auth_type"))
        auth: str | None = "NoClientCert"
        if auth_node is not None:
            auth = reader.string(auth_node, "tls_server_config.client_auth_type", None)
        where = "tls_server_config"
        if auth is None:
            pass  # reported: not a string
        elif auth not in CLIENT_AUTH and auth not in _UNVERIFIED_CLIENT_AUTH:
            reader.problem(
                auth_node,
                f"{where}.client_auth_type",
                f"invalid {shown_choice(auth)}; valid: {', '.join(CLIENT_AUTH)}",
            )
        elif auth in _UNVERIFIED_CLIENT_AUTH:
            reader.problem(
                auth_node,
                f"{where}.client_auth_type",
                f"{auth} (a client certificate accepted without verification) is {_UNSUPPORTED};"
                " use RequireAndVerifyClientCert with client_ca_file",
            )
        elif auth != "NoClientCert" and ca is None and not ca_mistyped:
            reader.problem(auth_node, where, f"client_auth_type {auth} needs client_ca_file")
        elif auth == "NoClientCert" and ca is not None:
            # Go refuses this too: a CA file that checks nothing looks like mTLS but is not.
            reader.problem(
                fields["client_ca_file"],
                where,
                "client_ca_file is set but client_auth_type is NoClientCert;"
                " set client_auth_type: RequireAndVerifyClientCert",
            )

        versions: dict[str, str | None] = {}
        for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
            given = _given(fields.get(name))
            versions[name] = (
                default if given is None else reader.choice(given, f"{where}.{name}", TLS_VERSIONS)
            )
        low, high = versions["min_version"], versions["max_version"]
        if low and high and TLS_VERSIONS[low] > TLS_VERSIONS[high]:
            reader.problem(
                _given(fields.get("min_version")) or fields.get("max_version"),
                where,
                f"min_version {low} is above max_version {high}",
            )

        prefer: bool | None = True
        if "prefer_server_cipher_suites" in fields:
            prefer = reader.boolean(
                fields["prefer_server_cipher_suites"], f"{where}.prefer_server_cipher_suites"
            )

        if (
            len(reader.problems) > before
            or cert is None
            or key_file is None
            or auth is None
            or low is None
            or high is None
            or prefer is None
        ):
            return None
        return TLSSettings(
            cert_file=cert,
            key_file=key_file,
            client_auth_type=auth,
            client_ca_file=ca,
            min_version=low,
            max_version=high,
            prefer_server_cipher_suites=prefer,
        )

    def path(
        self, fields: Fields, key: str, parent: Node, *, required: bool = False
    ) -> Path | None:
        node = _given(fields.get(key))
        where = f"tls_server_config.{key}"
        if node is None:
            if required:
                self.reader.problem(parent, where, "is required")
            return None
        text = self.reader.string(node, where, parent, what="a file path")
        if text is None:
            return None
        path = Path(text)
        return path if path.is_absolute() else self.base_dir / path

    def users(self, node: Node | None) -> dict[str, bytes]:
        reader = self.reader
        if node is None or is_null(node):
            return {}
        if isinstance(node, MappingNode):
            # Before anything is reported: whatever quotes them, they are scrubbed.
            for key_node, value_node in node.value:
                if isinstance(value_node, ScalarNode):
                    reader.secret(str(value_node.value))
                if isinstance(key_node, ScalarNode) and ":" in str(key_node.value):
                    # "user:password" written as the name: neither half is shown.
                    reader.secret(str(key_node.value))
                    reader.secret(str(key_node.value).partition(":")[2])
        fields = reader.mapping(node, "basic_auth_users", what="a mapping of user: bcrypt hash")
        if fields is None:
            return {}
        users: dict[str, bytes] = {}
        for user, hashed in fields.items():
            key_node = fields.key_node(user)
            if is_null(key_node) or not user:
                reader.problem(key_node, "basic_auth_users", "empty user name")
                continue
            if ":" in user:
                # "user:password" is a likely mistake here; do not echo what follows ':'.
                name = user.partition(":")[0]
                reader.problem(
                    key_node, "basic_auth_users", f"user name {name!r}... must not contain ':'"
                )
                continue
            # Never echo the value: it is a credential too, or even a plain password.
            if not isinstance(hashed, ScalarNode) or not BCRYPT_HASH.fullmatch(str(hashed.value)):
                reader.problem(
                    hashed, f"basic_auth_users.{user}", f"not a bcrypt hash; {BCRYPT_HINT}"
                )
                continue
            users[user] = str(hashed.value).encode()
        return users
