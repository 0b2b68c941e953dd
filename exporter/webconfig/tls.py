"""The TLS half of the web config: validated settings in, a server SSLContext out."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from exporter.yamlreader import MAX_SMALL_CONFIG_BYTES, FileReadError, read_limited

TLS_VERSIONS: Final = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH: Final = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}


@dataclass(frozen=True)
class TLSSettings:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    prefer_server_cipher_suites: bool = True


@dataclass(frozen=True)
class TLSProblem:
    """A file that cannot be used: `key` is the tls_server_config key it is about (so
    the schema can point at that line), `text` names the key and the path, never any
    of the file's content."""

    key: str
    text: str


def build_context(tls: TLSSettings) -> tuple[ssl.SSLContext | None, list[TLSProblem]]:
    """The server context, or every problem with the files."""
    problems: list[TLSProblem] = []
    cert = _read_pem(
        "cert_file", tls.cert_file, b"-----BEGIN CERTIFICATE-----", "certificate", problems
    )
    key = _read_pem("key_file", tls.key_file, b"PRIVATE KEY-----", "private key", problems)
    if key is not None and (b"ENCRYPTED PRIVATE KEY" in key or b"Proc-Type: 4,ENCRYPTED" in key):
        problems.append(
            TLSProblem(
                "key_file",
                f"tls_server_config.key_file: {tls.key_file} is encrypted;"
                " the web config has no passphrase, use an unencrypted key",
            )
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
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    if not tls.prefer_server_cipher_suites:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        # The callback stops OpenSSL from prompting on the terminal for a passphrase.
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_passphrase)
    except _PassphraseNeeded:
        return None, [
            TLSProblem("key_file", f"tls_server_config.key_file: {tls.key_file} is encrypted")
        ]
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            message = f"key_file {tls.key_file} does not match cert_file {tls.cert_file}"
            return None, [TLSProblem("key_file", f"tls_server_config: {message}")]
        message = f"cannot load cert_file {tls.cert_file} and key_file {tls.key_file}"
        message += f": {exc.reason or exc.strerror or 'invalid PEM'}"
        return None, [TLSProblem("cert_file", f"tls_server_config: {message}")]
    except OSError as exc:
        return None, [
            TLSProblem(
                "cert_file", f"tls_server_config: cannot load cert_file/key_file: {exc.strerror}"
            )
        ]
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        except (OSError, ssl.SSLError) as exc:
            reason = exc.reason if isinstance(exc, ssl.SSLError) else exc.strerror
            return None, [
                TLSProblem(
                    "client_ca_file",
                    f"tls_server_config.client_ca_file: cannot load {tls.client_ca_file}: {reason}",
                )
            ]
    return context, []


class _PassphraseNeeded(Exception):
    pass


def _no_passphrase() -> bytes:
    raise _PassphraseNeeded


def _read_pem(
    key: str, path: Path, marker: bytes, what: str, problems: list[TLSProblem]
) -> bytes | None:
    try:
        # Bounded and non-blocking like every file a reload reads (a FIFO, /dev/zero).
        data = read_limited(path, MAX_SMALL_CONFIG_BYTES)
    except FileReadError as exc:
        problems.append(TLSProblem(key, f"tls_server_config.{key}: cannot read {path}: {exc}"))
        return None
    if marker not in data:
        problems.append(TLSProblem(key, f"tls_server_config.{key}: no PEM {what} in {path}"))
        return None
    return data
