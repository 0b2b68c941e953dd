"""`--web.config.file` end to end: the console script behind real TLS and basic auth.

A CA, a server certificate for 127.0.0.1/localhost and client certificates are made
inside the test; the exporter polls the vendor simulator and is reached over real
sockets with the standard library's ssl and http.client, as Prometheus would.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from tests.certs import PKI, make_pki
from tests.support.config import account_at, write_config
from tests.support.processes import ExporterProcess, basic, exporter_command, http_get
from tests.support.simulator import SimAccount, SimMeter, VendorSimulator

pytestmark = pytest.mark.e2e

USER = "prometheus"
PASSWORD = "e2e-Scrape-Passw0rd"
# Cost 4 keeps the first check fast; the exporter caches verified credentials anyway.
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
API_KEY = "web-security-tornado-key"
REALM = 'Basic realm="saas-quota-exporter"'
TLS = "tls_server_config:\n  cert_file: pki/server.crt\n  key_file: pki/server.key\n"
AUTH = f"basic_auth_users:\n  {USER}: '{HASH}'\n"

Response = tuple[int, dict[str, str], str]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("web-security")


@pytest.fixture(scope="module")
def pki(workdir: Path) -> PKI:
    return make_pki(workdir / "pki")


@pytest.fixture(scope="module")
def config_file(workdir: Path) -> Iterator[Path]:
    account = SimAccount("tornado", API_KEY, {"jobs": SimMeter(limit=None, start=5)})
    with VendorSimulator([account]) as sim:
        accounts = [account_at(sim, "tornado", "pipeline", API_KEY)]
        yield write_config(workdir / "config.yml", accounts, interval="1m", timeout="2s")


def start(
    workdir: Path, config_file: Path, name: str, web_config: str, context: ssl.SSLContext | None
) -> ExporterProcess:
    web = workdir / f"{name}.yml"
    web.write_text(web_config)
    args = ["--config.file", str(config_file), "--web.config.file", str(web)]
    return ExporterProcess(
        [*args, "--log.level", "debug"], workdir / f"{name}.log", ssl_context=context
    ).start()


@pytest.fixture(scope="module")
def secured(workdir: Path, config_file: Path, pki: PKI) -> Iterator[ExporterProcess]:
    """TLS (default versions) and basic auth."""
    proc = start(workdir, config_file, "secured", TLS + AUTH, pki.client_context())
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def tls13_only(workdir: Path, config_file: Path, pki: PKI) -> Iterator[ExporterProcess]:
    web = TLS + "  min_version: TLS13\n"
    proc = start(workdir, config_file, "tls13", web, pki.client_context())
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def mtls(workdir: Path, config_file: Path, pki: PKI) -> Iterator[ExporterProcess]:
    web = TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: pki/ca.crt\n"
    proc = start(workdir, config_file, "mtls", web, pki.client_context(cert=pki.client))
    yield proc
    proc.stop()


def request(
    proc: ExporterProcess,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    body: bytes | None = None,
) -> Response:
    conn = http.client.HTTPSConnection(
        "127.0.0.1", proc.port, context=context or proc.ssl_context, timeout=5
    )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


# --- TLS ------------------------------------------------------------------------------


def test_https_scrape_with_the_ca(secured: ExporterProcess) -> None:
    status, headers, body = request(secured, "GET", "/metrics", basic(USER, PASSWORD))
    assert status == 200, body
    assert 'saas_quota_up{account="pipeline",provider="tornado"} 1.0' in body
    assert headers["Content-Type"].startswith("text/plain")


def test_server_certificate_is_checked_by_clients(secured: ExporterProcess, pki: PKI) -> None:
    untrusting = ssl.create_default_context()  # system CAs only, not the test CA
    with pytest.raises(ssl.SSLCertVerificationError):
        request(secured, "GET", "/-/healthy", context=untrusting)
    wrong_name = pki.client_context()
    with (
        socket.create_connection(("127.0.0.1", secured.port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        wrong_name.wrap_socket(raw, server_hostname="metrics.example.com")


def test_plain_http_to_the_tls_port_fails(secured: ExporterProcess) -> None:
    with pytest.raises((OSError, http.client.HTTPException)):
        http_get(f"http://127.0.0.1:{secured.port}/-/healthy", timeout=5)
    # ...and does not take the server down.
    assert secured.get("/-/healthy") == (200, "Healthy.\n")


def test_min_version_tls13_rejects_a_tls12_only_client(
    tls13_only: ExporterProcess, secured: ExporterProcess, pki: PKI
) -> None:
    tls12_only = pki.client_context()
    tls12_only.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        request(tls13_only, "GET", "/-/healthy", context=tls12_only)
    # The same client is fine with the default minimum (TLS12)...
    assert request(secured, "GET", "/-/healthy", context=tls12_only)[0] == 200
    # ...and a TLS 1.3 client is fine with TLS13.
    with (
        socket.create_connection(("127.0.0.1", tls13_only.port), timeout=5) as raw,
        pki.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() == "TLSv1.3"


def test_mtls_accepts_a_client_certificate_from_the_ca(mtls: ExporterProcess) -> None:
    status, _, body = request(mtls, "GET", "/metrics")
    assert status == 200
    assert "saas_quota_up" in body


@pytest.mark.parametrize("certificate", ["none", "stranger"])
def test_mtls_rejects_clients_without_a_valid_certificate(
    mtls: ExporterProcess, pki: PKI, certificate: str
) -> None:
    context = pki.client_context(cert=pki.stranger if certificate == "stranger" else None)
    # With TLS 1.3 the server's verdict on the client certificate arrives after the
    # client's side of the handshake, so it surfaces on the first read.
    with pytest.raises((OSError, http.client.HTTPException)):
        request(mtls, "GET", "/-/healthy", context=context)
    assert request(mtls, "GET", "/-/healthy")[0] == 200


def test_stalled_tls_clients_do_not_block_scrapes(secured: ExporterProcess) -> None:
    # The handshake runs in the request's thread: clients that connect and then send
    # nothing, or half a ClientHello, must not hold up accept() for everyone else.
    stalled = [socket.create_connection(("127.0.0.1", secured.port), timeout=5) for _ in range(5)]
    stalled[0].sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    try:
        time.sleep(0.2)  # let the server accept them and start waiting
        for _ in range(10):
            started = time.perf_counter()
            status, _, _ = request(secured, "GET", "/metrics", basic(USER, PASSWORD))
            took = time.perf_counter() - started
            assert status == 200
            # Blocked behind them, a scrape would wait out the 10 s handshake timeout;
            # the margin below that is for a loaded CI machine, not a speed target.
            assert took < 5.0, f"a scrape took {took:.2f}s behind stalled TLS clients"
    finally:
        for sock in stalled:
            sock.close()


# --- basic auth -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/metrics", "/", "/nope"])
def test_no_credentials_is_401_with_a_challenge(secured: ExporterProcess, path: str) -> None:
    status, headers, body = request(secured, "GET", path)
    assert status == 401
    assert headers["WWW-Authenticate"] == REALM
    assert "saas_quota" not in body


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(basic(USER, "wrong-password"), id="wrong password"),
        pytest.param(basic("someone", PASSWORD), id="unknown user"),
        pytest.param(basic(USER, PASSWORD.lower()), id="case matters"),
        pytest.param({"Authorization": f"Bearer {PASSWORD}"}, id="not Basic"),
        pytest.param({"Authorization": "Basic %%%"}, id="malformed"),
    ],
)
def test_wrong_credentials_are_401(secured: ExporterProcess, headers: dict[str, str]) -> None:
    status, response_headers, _ = request(secured, "GET", "/metrics", headers)
    assert status == 401
    assert response_headers["WWW-Authenticate"] == REALM


def test_right_credentials_are_200(secured: ExporterProcess) -> None:
    for path in ("/metrics", "/"):
        assert request(secured, "GET", path, basic(USER, PASSWORD))[0] == 200
    # urllib too, the way most scripts would call it.
    assert secured.get("/metrics", headers=basic(USER, PASSWORD))[0] == 200


def test_health_paths_stay_open(secured: ExporterProcess) -> None:
    assert request(secured, "GET", "/-/healthy")[::2] == (200, "Healthy.\n")
    assert request(secured, "GET", "/-/ready")[::2] == (200, "Ready.\n")
    assert request(secured, "HEAD", "/-/healthy")[0] == 200


def test_reload_requires_credentials(secured: ExporterProcess) -> None:
    assert request(secured, "POST", "/-/reload")[0] == 401
    assert request(secured, "POST", "/-/reload", basic(USER, "wrong"))[0] == 401
    assert request(secured, "POST", "/-/reload", basic(USER, PASSWORD))[::2] == (
        200,
        "config reloaded\n",
    )


def test_a_refused_request_leaves_the_connection_usable(secured: ExporterProcess) -> None:
    # A 401 to HEAD must carry no body, and a refused POST's body must not be read
    # as the next request: either would corrupt a keep-alive connection.
    assert secured.ssl_context is not None
    conn = http.client.HTTPSConnection(
        "127.0.0.1", secured.port, context=secured.ssl_context, timeout=5
    )
    try:
        conn.request("HEAD", "/metrics")
        response = conn.getresponse()
        assert (response.status, response.read()) == (401, b"")
        conn.request("POST", "/-/reload", body=b"x" * 100)
        response = conn.getresponse()
        assert response.status == 401
        response.read()
        conn.request("GET", "/metrics", headers=basic(USER, PASSWORD))
        response = conn.getresponse()
        assert response.status == 200
        assert "saas_quota_up" in response.read().decode()
    finally:
        conn.close()


def test_credentials_never_reach_the_logs(secured: ExporterProcess) -> None:
    for password in (PASSWORD, "wrong-" + PASSWORD):
        request(secured, "GET", "/metrics", basic(USER, password))
        request(secured, "POST", "/-/reload", basic(USER, password))
    logs = secured.logs()
    assert '"tls": true' in logs or '"tls":true' in logs, logs
    assert PASSWORD not in logs
    assert HASH not in logs
    assert HASH[7:29] not in logs, "not even the salt"
    assert basic(USER, PASSWORD)["Authorization"].split()[1] not in logs


# --- invalid web configs --------------------------------------------------------------


@pytest.mark.parametrize(
    ("web_config", "problem", "secret"),
    [
        pytest.param(
            f"basic_auth_users:\n  {USER}: {PASSWORD}\n",
            f"basic_auth_users.{USER}: not a bcrypt hash",
            PASSWORD,
            id="plain password instead of a hash",
        ),
        pytest.param(
            f"basic_auth_users:\n  {USER}: {HASH}\n  {USER}: {HASH}\n",
            f"invalid.yml:3:3: basic_auth_users.{USER}: duplicate key",
            HASH,
            id="duplicate user",
        ),
        pytest.param(
            "tls_server_config:\n  cert_file: gone.crt\n  key_file: pki/server.key\n",
            "tls_server_config.cert_file: cannot read",
            None,
            id="missing certificate",
        ),
        pytest.param(
            TLS + "  client_auth_type: RequireAndVerifyClientCert\n",
            "client_auth_type RequireAndVerifyClientCert needs client_ca_file",
            None,
            id="mTLS without a CA",
        ),
    ],
)
def test_invalid_web_config_exits_1_with_a_clear_message(
    workdir: Path,
    config_file: Path,
    pki: PKI,
    web_config: str,
    problem: str,
    secret: str | None,
) -> None:
    web = workdir / "invalid.yml"
    web.write_text(web_config)
    result = subprocess.run(
        [
            *exporter_command(),
            "--config.file",
            str(config_file),
            "--web.config.file",
            str(web),
            "--web.listen-address",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"invalid web config {web}:" in result.stderr
    assert problem in result.stderr
    assert "Traceback" not in output
    if secret is not None:
        assert secret not in output


def test_reload_rereads_the_web_config(workdir: Path, config_file: Path, pki: PKI) -> None:
    """Users and certificates rotate with SIGHUP / POST /-/reload, like the config."""
    proc = start(workdir, config_file, "rotating", TLS + AUTH, pki.client_context())
    try:
        new_password = "rotated-Passw0rd-2"
        new_hash = bcrypt.hashpw(new_password.encode(), bcrypt.gensalt(rounds=4)).decode()
        (workdir / "rotating.yml").write_text(TLS + f"basic_auth_users:\n  ops: '{new_hash}'\n")
        status, _, body = request(proc, "POST", "/-/reload", basic(USER, PASSWORD))
        assert status == 200, body
        assert request(proc, "GET", "/metrics", basic(USER, PASSWORD))[0] == 401
        assert request(proc, "GET", "/metrics", basic("ops", new_password))[0] == 200
        # A broken web config is refused as a whole: the running one stays.
        (workdir / "rotating.yml").write_text(TLS + "basic_auth_users:\n  ops: not-a-hash\n")
        status, _, body = request(proc, "POST", "/-/reload", basic("ops", new_password))
        assert status == 500
        assert "not a bcrypt hash" in body
        assert request(proc, "GET", "/metrics", basic("ops", new_password))[0] == 200
        assert new_password not in proc.logs()
    finally:
        proc.stop()


def test_config_check_validates_the_web_config(workdir: Path, config_file: Path) -> None:
    web = workdir / "check-bad.yml"
    web.write_text("basic_auth_users:\n  ops: plaintext-password\n")
    result = subprocess.run(
        [
            *exporter_command(),
            "--config.file",
            str(config_file),
            "--config.check",
            "--web.config.file",
            str(web),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 1
    assert "invalid web config" in result.stderr
    assert "plaintext-password" not in result.stdout + result.stderr
    web.write_text(AUTH)
    result = subprocess.run(
        [
            *exporter_command(),
            "--config.file",
            str(config_file),
            "--config.check",
            "--web.config.file",
            str(web),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert f"{web}: OK" in result.stdout
