"""exporter.webconfig: the exporter-toolkit web-config file, parsed and enforced.

Good configs load into a working ssl.SSLContext; every bad config is a row with the
exact problems it must produce (which name the key and the file, never a secret).
`authorized()` is checked against real bcrypt hashes (cost 4, for speed).
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter import webconfig
from exporter.webconfig import WebConfig, WebConfigError, load_web_config
from tests.certs import PKI, encrypted_key, make_pki
from tests.support.examples import examples

PASSWORD = "correct horse battery staple"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
OTHER_HASH = bcrypt.hashpw(b"bob's password", bcrypt.gensalt(rounds=4)).decode()
TLS = "tls_server_config:\n  cert_file: pki/server.crt\n  key_file: pki/server.key\n"
VALID_AUTH = "NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
VALID_VERSIONS = "TLS10, TLS11, TLS12, TLS13"
TOP_KEYS = "basic_auth_users, http_server_config, tls_server_config"
TLS_KEYS = (
    "cert_file, key_file, client_auth_type, client_ca_file, min_version, max_version,"
    " prefer_server_cipher_suites"
)
BCRYPT_HINT = "generate one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("webconfig")


@pytest.fixture(scope="module")
def pki(pki_dir: Path) -> PKI:
    return make_pki(pki_dir / "pki")


def write(directory: Path, text: str, name: str = "web.yml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def basic(user: str | bytes, password: str | bytes) -> str:
    raw = (user if isinstance(user, bytes) else user.encode()) + b":"
    raw += password if isinstance(password, bytes) else password.encode()
    return "Basic " + base64.b64encode(raw).decode()


# --- good configs ---------------------------------------------------------------------


def test_tls_only(pki: PKI, pki_dir: Path) -> None:
    config = load_web_config(write(pki_dir, TLS))
    context = config.ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_NONE
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.maximum_version == ssl.TLSVersion.TLSv1_3
    assert context.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    assert config.authorized(None), "no basic_auth_users: everyone is authorized"


def test_basic_auth_only(pki_dir: Path) -> None:
    config = load_web_config(write(pki_dir, f"basic_auth_users:\n  prometheus: {HASH}\n"))
    assert config.ssl_context() is None
    assert config.authorized(basic("prometheus", PASSWORD))
    assert not config.authorized(None)


def test_tls_and_basic_auth_with_a_2y_hash_from_htpasswd(pki: PKI, pki_dir: Path) -> None:
    htpasswd_hash = "$2y$" + HASH[4:]
    text = TLS + f"basic_auth_users:\n  prometheus: '{htpasswd_hash}'\n"
    config = load_web_config(write(pki_dir, text))
    assert config.ssl_context() is not None
    assert config.authorized(basic("prometheus", PASSWORD))


def test_relative_paths_resolve_against_the_web_configs_directory(
    pki: PKI, pki_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # somewhere the relative paths would not resolve
    config = load_web_config(write(pki_dir, TLS))
    assert config.tls is not None
    assert config.tls.cert_file == pki_dir / "pki" / "server.crt"
    assert config.tls.key_file == pki_dir / "pki" / "server.key"


def test_absolute_paths_are_kept(pki: PKI, tmp_path: Path) -> None:
    text = f"tls_server_config:\n  cert_file: {pki.server.cert}\n  key_file: {pki.server.key}\n"
    config = load_web_config(write(tmp_path, text))
    assert config.tls is not None
    assert config.tls.cert_file == pki.server.cert


@pytest.mark.parametrize(
    ("lines", "minimum", "maximum"),
    [
        ("  min_version: TLS13\n", ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3),
        ("  max_version: TLS12\n", ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
        (
            "  min_version: TLS12\n  max_version: TLS13\n",
            ssl.TLSVersion.TLSv1_2,
            ssl.TLSVersion.TLSv1_3,
        ),
    ],
)
def test_min_and_max_version(
    pki: PKI, pki_dir: Path, lines: str, minimum: ssl.TLSVersion, maximum: ssl.TLSVersion
) -> None:
    context = load_web_config(write(pki_dir, TLS + lines)).ssl_context()
    assert context is not None
    assert (context.minimum_version, context.maximum_version) == (minimum, maximum)


@pytest.mark.parametrize(
    ("auth_type", "mode"),
    [
        ("RequireAndVerifyClientCert", ssl.CERT_REQUIRED),
        ("VerifyClientCertIfGiven", ssl.CERT_OPTIONAL),
    ],
)
def test_client_certificates(pki: PKI, pki_dir: Path, auth_type: str, mode: ssl.VerifyMode) -> None:
    text = TLS + f"  client_auth_type: {auth_type}\n  client_ca_file: pki/ca.crt\n"
    config = load_web_config(write(pki_dir, text))
    context = config.ssl_context()
    assert context is not None
    assert context.verify_mode == mode
    assert config.tls is not None
    assert config.tls.client_ca_file == pki_dir / "pki" / "ca.crt"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# only a comment\n",
        "tls_server_config:\nbasic_auth_users:\n",
        "tls_server_config: {}\n",
        "http_server_config:\n  http2: false\n",
        "http_server_config:\n  http2: true\n  headers: {}\n",
    ],
)
def test_configs_that_change_nothing(pki_dir: Path, text: str) -> None:
    config = load_web_config(write(pki_dir, text))
    assert config.ssl_context() is None
    assert config.authorized(None)


def test_go_defaults_written_out_are_accepted(pki: PKI, pki_dir: Path) -> None:
    # What templating tools render for "unset": empty lists and Go's defaults.
    text = TLS + (
        "  cipher_suites: []\n  curve_preferences: []\n  client_allowed_sans: []\n"
        "  prefer_server_cipher_suites: true\n  client_auth_type: NoClientCert\n"
    )
    assert load_web_config(write(pki_dir, text)).ssl_context() is not None


def test_prefer_server_cipher_suites_false_is_honoured(pki: PKI, pki_dir: Path) -> None:
    text = TLS + "  prefer_server_cipher_suites: false\n"
    context = load_web_config(write(pki_dir, text)).ssl_context()
    assert context is not None
    assert not context.options & ssl.OP_CIPHER_SERVER_PREFERENCE


# --- bad configs: each with its exact problems ----------------------------------------


def at(position: str, problem: str) -> str:
    """A problem as reported: the web config's file:line:col first ({dir}: its directory)."""
    return "{dir}/web.yml:" + position + ": " + problem


# {dir} stands for the web config's directory. Every problem has its position, and they
# come in document order, the order one fixes them in.
BAD_CONFIGS: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "unknown top-level key",
        "tls_config: {}\n",
        (
            at(
                "1:1",
                f"tls_config: unknown key 'tls_config'; allowed keys: {TOP_KEYS}",
            ),
        ),
    ),
    (
        "non-string top-level key does not crash the sort",
        "1: x\nfoo: y\n",
        (
            at(
                "1:1",
                f"1: unknown key '1'; allowed keys: {TOP_KEYS}",
            ),
            at(
                "2:1",
                f"foo: unknown key 'foo'; allowed keys: {TOP_KEYS}",
            ),
        ),
    ),
    (
        "rate_limit is a Go-only feature",
        "rate_limit:\n  interval: 1s\n  burst: 20\n",
        (at("1:1", "rate_limit: not supported by saas-quota-exporter"),),
    ),
    ("not a mapping", "- a\n- b\n", (at("1:1", "the web config must be a mapping, got a list"),)),
    (
        "unknown TLS key",
        TLS + "  certfile: x.crt\n",
        (
            at(
                "4:3",
                f"tls_server_config.certfile: unknown key 'certfile'; allowed keys: {TLS_KEYS}",
            ),
        ),
    ),
    (
        "Go cipher-suite names",
        TLS + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
        (at("4:3", "tls_server_config.cipher_suites: not supported by saas-quota-exporter"),),
    ),
    (
        "Go curve names",
        TLS + "  curve_preferences: [X25519]\n",
        (at("4:3", "tls_server_config.curve_preferences: not supported by saas-quota-exporter"),),
    ),
    (
        "client_allowed_sans",
        TLS
        + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: pki/ca.crt\n"
        + "  client_allowed_sans: [prometheus.example]\n",
        (at("6:3", "tls_server_config.client_allowed_sans: not supported by saas-quota-exporter"),),
    ),
    (
        "inline PEM key",
        "tls_server_config:\n  cert_file: pki/server.crt\n  key: |\n    -----BEGIN...\n",
        (
            at("2:3", "tls_server_config.key_file: is required"),
            at(
                "3:3",
                "tls_server_config.key: inline PEM is not supported by saas-quota-exporter;"
                " use key_file",
            ),
        ),
    ),
    (
        "missing cert_file",
        "tls_server_config:\n  key_file: pki/server.key\n",
        (at("2:3", "tls_server_config.cert_file: is required"),),
    ),
    (
        "missing key_file",
        "tls_server_config:\n  cert_file: pki/server.crt\n",
        (at("2:3", "tls_server_config.key_file: is required"),),
    ),
    (
        "TLS settings without any files",
        "tls_server_config:\n  min_version: TLS13\n",
        (
            at("2:3", "tls_server_config.cert_file: is required"),
            at("2:3", "tls_server_config.key_file: is required"),
        ),
    ),
    (
        "cert_file not a string",
        "tls_server_config:\n  cert_file: [a]\n  key_file: pki/server.key\n",
        (at("2:14", "tls_server_config.cert_file: expected a file path, got a list"),),
    ),
    (
        "tls_server_config not a mapping",
        "tls_server_config: yes please\n",
        (at("1:20", "tls_server_config: expected a mapping, got a string"),),
    ),
    (
        "bad client_auth_type",
        TLS + "  client_auth_type: Always\n",
        (at("4:21", f"tls_server_config.client_auth_type: invalid 'Always'; valid: {VALID_AUTH}"),),
    ),
    (
        "client_auth_type not a string",
        TLS + "  client_auth_type: [RequireAndVerifyClientCert]\n",
        (at("4:21", "tls_server_config.client_auth_type: expected a string, got a list"),),
    ),
    (
        "a client certificate accepted without verification",
        TLS + "  client_auth_type: RequireAnyClientCert\n  client_ca_file: pki/ca.crt\n",
        (
            at(
                "4:21",
                "tls_server_config.client_auth_type: RequireAnyClientCert (a client certificate"
                " accepted without verification) is not supported by saas-quota-exporter;"
                " use RequireAndVerifyClientCert with client_ca_file",
            ),
        ),
    ),
    (
        "RequireAndVerifyClientCert without client_ca_file",
        TLS + "  client_auth_type: RequireAndVerifyClientCert\n",
        (
            at(
                "4:21",
                "tls_server_config: client_auth_type RequireAndVerifyClientCert"
                " needs client_ca_file",
            ),
        ),
    ),
    (
        "VerifyClientCertIfGiven without client_ca_file",
        TLS + "  client_auth_type: VerifyClientCertIfGiven\n",
        (
            at(
                "4:21",
                "tls_server_config: client_auth_type VerifyClientCertIfGiven needs client_ca_file",
            ),
        ),
    ),
    (
        "client_ca_file that would check nothing",
        TLS + "  client_ca_file: pki/ca.crt\n",
        (
            at(
                "4:19",
                "tls_server_config: client_ca_file is set but client_auth_type is NoClientCert;"
                " set client_auth_type: RequireAndVerifyClientCert",
            ),
        ),
    ),
    (
        "bad min_version",
        TLS + "  min_version: TLS14\n",
        (at("4:16", f"tls_server_config.min_version: invalid 'TLS14'; valid: {VALID_VERSIONS}"),),
    ),
    (
        "Go constant spelling of a version",
        TLS + "  max_version: VersionTLS13\n",
        (
            at(
                "4:16",
                f"tls_server_config.max_version: invalid 'VersionTLS13'; valid: {VALID_VERSIONS}",
            ),
        ),
    ),
    (
        "min_version not a string",
        TLS + "  min_version: [TLS12]\n",
        (at("4:16", "tls_server_config.min_version: expected a string, got a list"),),
    ),
    (
        "min_version above max_version",
        TLS + "  min_version: TLS13\n  max_version: TLS12\n",
        (at("4:16", "tls_server_config: min_version TLS13 is above max_version TLS12"),),
    ),
    (
        "prefer_server_cipher_suites not a boolean",
        TLS + "  prefer_server_cipher_suites: sometimes\n",
        (
            at(
                "4:32",
                "tls_server_config.prefer_server_cipher_suites:"
                " expected true or false, got a string",
            ),
        ),
    ),
    (
        "http headers",
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        (at("2:3", "http_server_config.headers: not supported by saas-quota-exporter"),),
    ),
    (
        "http2 not a boolean",
        "http_server_config:\n  http2: sure\n  h3: true\n",
        (
            at("2:10", "http_server_config.http2: expected true or false, got a string"),
            at("3:3", "http_server_config.h3: unknown key 'h3'; allowed keys: headers, http2"),
        ),
    ),
    (
        "a plain password instead of a hash",
        "basic_auth_users:\n  alice: hunter2\n",
        (at("2:10", f"basic_auth_users.alice: not a bcrypt hash; {BCRYPT_HINT}"),),
    ),
    (
        "a truncated hash",
        "basic_auth_users:\n  alice: $2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37\n",
        (at("2:10", f"basic_auth_users.alice: not a bcrypt hash; {BCRYPT_HINT}"),),
    ),
    (
        "a cost Go's bcrypt refuses",
        "basic_auth_users:\n  alice: " + HASH[:4] + "03" + HASH[6:] + "\n",
        (at("2:10", f"basic_auth_users.alice: not a bcrypt hash; {BCRYPT_HINT}"),),
    ),
    (
        "a $2x$ hash (not what Go accepts)",
        "basic_auth_users:\n  alice: $2x$" + HASH[4:] + "\n",
        (at("2:10", f"basic_auth_users.alice: not a bcrypt hash; {BCRYPT_HINT}"),),
    ),
    (
        "no hash at all",
        "basic_auth_users:\n  alice:\n",
        (at("2:9", f"basic_auth_users.alice: not a bcrypt hash; {BCRYPT_HINT}"),),
    ),
    (
        "user:password as the user name",
        f"basic_auth_users:\n  'alice:hunter2': {HASH}\n",
        (at("2:3", "basic_auth_users: user name 'alice'... must not contain ':'"),),
    ),
    (
        "users as a list",
        "basic_auth_users:\n  - alice\n",
        (at("2:3", "basic_auth_users: expected a mapping of user: bcrypt hash, got a list"),),
    ),
    (
        "missing cert_file on disk",
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: pki/server.key\n",
        (
            at(
                "2:14",
                "tls_server_config.cert_file: cannot read {dir}/missing.crt:"
                " No such file or directory",
            ),
        ),
    ),
    (
        "cert_file is a directory",
        "tls_server_config:\n  cert_file: pki\n  key_file: pki/server.key\n",
        (
            at(
                "2:14",
                "tls_server_config.cert_file: cannot read {dir}/pki:"
                " is a directory, not a regular file",
            ),
        ),
    ),
    (
        "key_file holds a certificate",
        "tls_server_config:\n  cert_file: pki/server.crt\n  key_file: pki/ca.crt\n",
        (at("3:13", "tls_server_config.key_file: no PEM private key in {dir}/pki/ca.crt"),),
    ),
    (
        "cert_file holds a key",
        "tls_server_config:\n  cert_file: pki/server.key\n  key_file: pki/server.key\n",
        (at("2:14", "tls_server_config.cert_file: no PEM certificate in {dir}/pki/server.key"),),
    ),
    (
        "key of another certificate",
        "tls_server_config:\n  cert_file: pki/server.crt\n  key_file: pki/client.key\n",
        (
            at(
                "3:13",
                "tls_server_config: key_file {dir}/pki/client.key does not match"
                " cert_file {dir}/pki/server.crt",
            ),
        ),
    ),
    (
        "unreadable client_ca_file",
        TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: nope/ca.crt\n",
        (
            at(
                "5:19",
                "tls_server_config.client_ca_file: cannot read {dir}/nope/ca.crt:"
                " No such file or directory",
            ),
        ),
    ),
    (
        "every problem in one run, files included",
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: pki/server.key\n"
        "basic_auth_users:\n  alice: hunter2\n",
        (
            at(
                "2:14",
                "tls_server_config.cert_file: cannot read {dir}/missing.crt:"
                " No such file or directory",
            ),
            at("5:10", f"basic_auth_users.alice: not a bcrypt hash; {BCRYPT_HINT}"),
        ),
    ),
    (
        "YAML syntax error",
        "tls_server_config:\n  cert_file: [a\nbasic_auth_users:\n",
        (
            at(
                "3:17",
                "invalid YAML: while parsing a flow sequence at line 2,"
                " expected ',' or ']', but got ':'",
            ),
        ),
    ),
    (
        "YAML indentation error",
        "basic_auth_users:\n  alice: x\n   bob: y\n",
        (at("3:7", "invalid YAML: mapping values are not allowed here"),),
    ),
    (
        "duplicate user (strict decoding, as in Go)",
        f"basic_auth_users:\n  alice: {HASH}\n  alice: {OTHER_HASH}\n",
        (at("3:3", "basic_auth_users.alice: duplicate key"),),
    ),
    (
        "duplicate section",
        TLS + TLS,
        (at("4:1", "tls_server_config: duplicate key"),),
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [pytest.param(text, expected, id=name) for name, text, expected in BAD_CONFIGS],
)
def test_bad_config(pki: PKI, pki_dir: Path, text: str, expected: tuple[str, ...]) -> None:
    with pytest.raises(WebConfigError) as caught:
        load_web_config(write(pki_dir, text))
    assert caught.value.problems == tuple(p.replace("{dir}", str(pki_dir)) for p in expected)
    assert str(caught.value) == "; ".join(caught.value.problems)


# --- every problem at once, each where it is (one reader with exporter.config) ---------


def test_three_problems_in_three_sections_are_all_reported_with_file_line_col(
    pki: PKI, pki_dir: Path
) -> None:
    text = (
        "tls_server_config:\n"
        "  cert_file: pki/server.crt\n"
        "  key_file: pki/server.key\n"
        "  min_version: TLS99\n"
        "http_server_config:\n"
        "  http3: true\n"
        "basic_auth_users:\n"
        "  alice: hunter2\n"
    )
    path = write(pki_dir, text)
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    assert caught.value.problems == (
        f"{path}:4:16: tls_server_config.min_version: invalid 'TLS99'; valid: {VALID_VERSIONS}",
        f"{path}:6:3: http_server_config.http3: unknown key 'http3'; allowed keys: headers, http2",
        f"{path}:8:10: basic_auth_users.alice: not a bcrypt hash; {BCRYPT_HINT}",
    )


def test_a_duplicate_key_does_not_hide_the_other_problems(pki_dir: Path) -> None:
    # Go's UnmarshalStrict and the old constructor stopped at the duplicate.
    text = f"basic_auth_users:\n  alice: {HASH}\n  alice: {OTHER_HASH}\n  bob: hunter2\n"
    path = write(pki_dir, text)
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    assert caught.value.problems == (
        f"{path}:3:3: basic_auth_users.alice: duplicate key",
        f"{path}:4:8: basic_auth_users.bob: not a bcrypt hash; {BCRYPT_HINT}",
    )


def test_an_unacceptable_character_has_its_position(pki_dir: Path) -> None:
    path = write(pki_dir, "basic_auth_users:\n  alice: a\x00b\n")
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    assert caught.value.problems == (
        f"{path}:2:11: invalid YAML: unacceptable character #x0000: special characters are not"
        " allowed",
    )


def test_a_password_pasted_into_another_field_is_scrubbed_from_its_message(
    pki: PKI, pki_dir: Path
) -> None:
    # min_version quotes an invalid value (a version name); the same text as a
    # basic_auth_users value or a "user:password" name is a credential and never shown.
    text = TLS + (
        "  min_version: s3cret-Pass\n  max_version: other-s3cret\n"
        "basic_auth_users:\n  alice: s3cret-Pass\n  'bob:other-s3cret': x\n"
    )
    with pytest.raises(WebConfigError) as caught:
        load_web_config(write(pki_dir, text))
    assert "s3cret" not in str(caught.value)
    assert "tls_server_config.min_version: invalid '<redacted>'" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "secrets"),
    [
        ("basic_auth_users:\n  alice: hunter2\n", ["hunter2"]),
        ("basic_auth_users:\n  'alice:hunter2': hunter3\n", ["hunter2", "hunter3"]),
        (f"basic_auth_users:\n  alice: {HASH[:-5]}\n", [HASH[:-5], HASH[7:20]]),
        (f"basic_auth_users:\n  alice: {HASH}\n  alice: {OTHER_HASH}\n", [HASH, OTHER_HASH]),
    ],
    # Fixed ids: the hashes have random salts, and parallel workers must collect alike.
    ids=["plain password", "password in the user name", "cut hash", "duplicate user"],
)
def test_errors_never_echo_passwords_or_hashes(
    pki_dir: Path, text: str, secrets: list[str]
) -> None:
    with pytest.raises(WebConfigError) as caught:
        load_web_config(write(pki_dir, text))
    for secret in secrets:
        assert secret not in str(caught.value)


def test_errors_never_echo_key_material(pki: PKI, pki_dir: Path) -> None:
    text = "tls_server_config:\n  cert_file: pki/server.key\n  key_file: pki/server.key\n"
    with pytest.raises(WebConfigError) as caught:
        load_web_config(write(pki_dir, text))
    key_body = pki.server.key.read_text().splitlines()[1]
    assert key_body not in str(caught.value)


def test_encrypted_key_is_an_error_not_a_passphrase_prompt(pki: PKI, pki_dir: Path) -> None:
    # Without a passphrase callback OpenSSL would prompt on the terminal and block.
    encrypted = encrypted_key(pki.server, pki_dir / "encrypted.key", b"passphrase")
    text = f"tls_server_config:\n  cert_file: pki/server.crt\n  key_file: {encrypted.name}\n"
    with pytest.raises(WebConfigError) as caught:
        load_web_config(write(pki_dir, text))
    assert caught.value.problems == (
        f"{pki_dir / 'web.yml'}:3:13: tls_server_config.key_file: {encrypted} is encrypted;"
        " the web config has no passphrase, use an unencrypted key",
    )


def test_missing_web_config_file(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError) as caught:
        load_web_config(tmp_path / "nope.yml")
    assert caught.value.problems == (
        f"cannot read {tmp_path / 'nope.yml'}: No such file or directory",
    )


def test_web_config_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_bytes(b"basic_auth_users:\n  alice: \xff\xfe\n")
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    assert caught.value.problems == (f"{path}: not UTF-8 text (byte 27)",)


def test_repr_shows_no_hashes(pki_dir: Path) -> None:
    config = load_web_config(write(pki_dir, f"basic_auth_users:\n  alice: {HASH}\n"))
    assert HASH not in repr(config)
    assert HASH[7:29] not in repr(config)


def test_constructing_with_bad_files_raises_with_the_problems(pki: PKI, tmp_path: Path) -> None:
    settings = webconfig.TLSSettings(cert_file=tmp_path / "a.crt", key_file=pki.server.key)
    with pytest.raises(WebConfigError) as caught:
        WebConfig(tls=settings)
    assert caught.value.problems == (
        f"tls_server_config.cert_file: cannot read {tmp_path / 'a.crt'}: No such file or directory",
    )


# --- authorized() ---------------------------------------------------------------------


@pytest.fixture
def users() -> WebConfig:
    return WebConfig(users={"alice": HASH.encode(), "bob": OTHER_HASH.encode()})


def test_right_password(users: WebConfig) -> None:
    assert users.authorized(basic("alice", PASSWORD))
    assert users.authorized(basic("bob", "bob's password"))


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(basic("alice", "wrong"), id="wrong password"),
        pytest.param(basic("alice", ""), id="empty password"),
        pytest.param(basic("bob", PASSWORD), id="another user's password"),
        pytest.param(basic("mallory", PASSWORD), id="unknown user"),
        pytest.param(basic("", PASSWORD), id="empty user"),
        pytest.param(None, id="no header"),
        pytest.param("", id="empty header"),
        pytest.param("Basic", id="scheme only"),
        pytest.param("Basic !!!not-base64!!!", id="not base64"),
        pytest.param("Basic " + base64.b64encode(b"alice").decode(), id="no colon"),
        pytest.param(basic(b"\xffalice", PASSWORD), id="user not UTF-8"),
        pytest.param(
            "Bearer " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode(),
            id="not Basic",
        ),
        pytest.param(
            "Digest " + basic("alice", PASSWORD).removeprefix("Basic "), id="Digest scheme"
        ),
    ],
)
def test_rejected(users: WebConfig, header: str | None) -> None:
    assert not users.authorized(header)


def test_scheme_is_case_insensitive(users: WebConfig) -> None:
    assert users.authorized("basic " + basic("alice", PASSWORD).removeprefix("Basic "))
    assert users.authorized("BASIC " + basic("alice", PASSWORD).removeprefix("Basic "))


def test_password_may_contain_colons_and_non_utf8_bytes() -> None:
    password = b"a:b:\xff"
    config = WebConfig(users={"u": bcrypt.hashpw(password, bcrypt.gensalt(rounds=4))})
    assert config.authorized(basic("u", password))
    assert not config.authorized(basic("u", b"a:b"))


def test_passwords_longer_than_72_bytes_compare_like_htpasswd_and_go() -> None:
    # bcrypt only ever used the first 72 bytes; htpasswd hashes them, Go compares them.
    long_password = b"x" * 72
    config = WebConfig(users={"u": bcrypt.hashpw(long_password, bcrypt.gensalt(rounds=4))})
    assert config.authorized(basic("u", long_password + b"tail"))
    assert not config.authorized(basic("u", b"x" * 71))


class CountingCheckpw:
    def __init__(self, real: Callable[[bytes, bytes], bool]) -> None:
        self.real = real
        self.calls = 0

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.calls += 1
        return self.real(password, hashed)


@pytest.fixture
def checkpw(monkeypatch: pytest.MonkeyPatch) -> CountingCheckpw:
    spy = CountingCheckpw(bcrypt.checkpw)
    monkeypatch.setattr(bcrypt, "checkpw", spy)
    return spy


def test_verified_credentials_are_cached(users: WebConfig, checkpw: CountingCheckpw) -> None:
    assert users.authorized(basic("alice", PASSWORD))
    assert checkpw.calls == 1
    for _ in range(20):
        assert users.authorized(basic("alice", PASSWORD))
    assert checkpw.calls == 1, "repeated scrapes must not pay for bcrypt again"


def test_cache_still_rejects_a_wrong_password(users: WebConfig, checkpw: CountingCheckpw) -> None:
    assert users.authorized(basic("alice", PASSWORD))
    assert not users.authorized(basic("alice", PASSWORD + "x"))
    assert not users.authorized(basic("alice", PASSWORD[:-1]))
    assert not users.authorized(basic("bob", PASSWORD))
    assert checkpw.calls == 4, "a wrong password is always checked by bcrypt"
    assert not users.authorized(basic("alice", PASSWORD + "x"))
    assert checkpw.calls == 5, "failures are not cached"


def test_unknown_users_cost_a_bcrypt_check_too(users: WebConfig, checkpw: CountingCheckpw) -> None:
    # Otherwise the response time tells which user names exist.
    assert not users.authorized(basic("mallory", PASSWORD))
    assert not users.authorized(basic("mallory", PASSWORD))
    assert checkpw.calls == 2


def test_cache_keys_cannot_be_shifted_between_user_and_password() -> None:
    # Two users sharing one hash: "a" with password "b\0c" must not unlock "a\0b"
    # with password "c" through the cache (a naive join of the parts would collide).
    shared = bcrypt.hashpw(b"b\0c", bcrypt.gensalt(rounds=4))
    config = WebConfig(users={"a": shared, "a\0b": shared})
    assert config.authorized(basic("a", b"b\0c"))
    assert not config.authorized(basic("a\0b", b"c"))


def test_no_users_means_no_authentication() -> None:
    config = WebConfig()
    assert config.authorized(None)
    assert config.authorized("Bearer anything")


# --- properties: any text is a WebConfig or a WebConfigError, never another exception --

FUZZ_SECRET = "pw_FUZZ_secret_9z8y7x6w"
_ODD = st.sampled_from(["\t", "\n", "\u200b", "\ufeff", "\x00", "\u2028", "\U0001f600", ":"])
_LEAF = st.one_of(
    st.text(max_size=10),
    st.sampled_from(
        [
            "",
            "~",
            "[]",
            "{}",
            "yes",
            "1e400",
            "2001-02-30",
            "2001-13-01 25:61:61",
            "1" * 5000,
            "!!binary @@@",
            "!!int x",
            "*a",
            "TLS12",
            "TLS99",
            "NoClientCert",
            "RequestClientCert",
            "pki/server.crt",
            "/dev/zero",
            "/nonexistent",
            HASH,
        ]
    ),
)
_KEYS = {
    "tls_server_config": [
        "cert_file",
        "key_file",
        "client_auth_type",
        "client_ca_file",
        "min_version",
        "max_version",
        "prefer_server_cipher_suites",
        "cipher_suites",
        "cert",
        "bogus",
    ],
    "basic_auth_users": ["alice", "bob:x", "", "carol"],
    "http_server_config": ["http2", "headers", "bogus"],
    "rate_limit": ["interval"],
    "bogus": ["x"],
}


@st.composite
def web_config_texts(draw: st.DrawFn) -> str:
    lines: list[str] = []
    for section in draw(st.lists(st.sampled_from(list(_KEYS)), max_size=4)):
        anchor = " &sec" if draw(st.booleans()) else ""
        lines.append(f"{section}:{anchor}")
        for key in draw(st.lists(st.sampled_from(_KEYS[section]), max_size=4)):
            value = (
                FUZZ_SECRET
                if section == "basic_auth_users" and draw(st.booleans())
                else (draw(_LEAF))
            )
            if draw(st.booleans()):
                value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            lines.append(f"  {key}: {value}")
    if draw(st.booleans()):
        depth = draw(st.integers(1, 300))
        lines.append("x: " + "[" * depth + "]" * draw(st.integers(0, depth)))
    if draw(st.booleans()):
        lines.append("y: *sec")
    text = "\n".join(lines) + "\n"
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(alphabet=_ODD, min_size=1, max_size=3)) + text[at:]
    return text


def _check_web_outcome(text: str, directory: Path) -> None:
    path = directory / "web.yml"
    problems: tuple[str, ...] = ()
    try:
        webconfig.parse_web_config_text(text, path)
    except WebConfigError as exc:
        problems = exc.problems or ("<no problems listed>",)
    for problem in problems:
        # Every problem where it is: file:line:col (the file alone for a YAML error
        # PyYAML gives no position for), then the key.
        assert problem.startswith(f"{path}:"), problem
        assert FUZZ_SECRET not in problem, problem
        assert HASH not in problem, problem


_FAST = settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@_FAST
@given(st.text(max_size=300))
def test_any_text_is_a_web_config_or_a_web_config_error(pki_dir: Path, text: str) -> None:
    _check_web_outcome(text, pki_dir)


@_FAST
@given(web_config_texts())
def test_any_mutated_web_config_is_accepted_or_a_positioned_error_without_secrets(
    pki: PKI, pki_dir: Path, text: str
) -> None:
    _check_web_outcome(text, pki_dir)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client_auth_type", "$2b$04$a.2iHBaLQ42WXKRjNqqlP.9i0LMfM4Y3odcgpZTGJbiYHe61.TmKq"),
        ("min_version", "sk_live_0123456789abcdef0123456789/+="),
    ],
    ids=["a hash in client_auth_type", "a key in min_version"],
)
def test_a_rejected_choice_is_quoted_only_when_it_looks_like_a_name(
    tmp_path: Path, field: str, value: str
) -> None:
    """Found by the mutation property: a hash pasted into a choice field was echoed."""
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config:\n  {field}: '{value}'\n")
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    text = str(caught.value)
    assert value not in text
    assert value[:12] not in text
    assert "invalid value (not shown: it does not look like a name)" in text
