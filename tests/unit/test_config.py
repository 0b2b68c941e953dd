"""The config loader: tables of good configs with their values, bad configs with messages.

Every bad config is checked against the exact list of problems, in document order,
each `file:line:col: path: message`. The fake keys below are distinctive so that a
message which echoes one is caught wherever it appears.
"""

from __future__ import annotations

import dataclasses
import os
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config import AccountConfig, Config, ConfigError, load_config, parse_config
from exporter.model import AlertPolicy, AlertSettings
from exporter.providers import PROVIDERS
from exporter.providers.base import Provider
from exporter.redaction import REDACTED, REDACTOR, Secret
from tests.support.examples import examples

SOURCE = "exporter.yml"
KEY = "sk_live_FAKEKEY_4d1e7a2b9c"
KEY2 = "sk_live_FAKEKEY_second_83f1"
FILE_KEY = "fk_FAKEFILEKEY_0c9b8a7f"
ENV_KEY = "ek_FAKEENVKEY_55aa33cc"
SECRETS = (KEY, KEY2, FILE_KEY, ENV_KEY, "pw_FAKEPASSWORD_77")
# What an unknown provider's message offers: the registry's names, whatever they are.
PROVIDER_LIST = ", ".join(sorted(PROVIDERS))
ACCOUNT_KEYS = (
    "provider, account, api_key, api_key_file, base_url, interval, timeout, max_staleness, params,"
    " alerts"
)
GRAMMAR_HINT = "use whole numbers with units y, w, d, h, m, s, ms, largest first, e.g. 1h30m"
# Marks a tmp_path-relative path in the tables; resolved per test.
DIR = "{dir}"

MIN = 60.0
HOUR = 3600.0


def account(
    provider: str = "pictory",
    name: str = "marketing",
    key: str = KEY,
    *,
    interval: float = 5 * MIN,
    timeout: float = 10.0,
    max_staleness: float = 15 * MIN,
    base_url: str | None = None,
    api_key_file: str | None = None,
) -> AccountConfig:
    return AccountConfig(
        provider=provider,
        adapter=PROVIDERS[provider],
        account=name,
        api_key=Secret(key),
        interval=interval,
        timeout=timeout,
        max_staleness=max_staleness,
        base_url=base_url,
        api_key_file=api_key_file,
    )


def parse(
    text: str,
    base_dir: Path,
    environ: dict[str, str] | None = None,
    files: dict[str, str] | None = None,
) -> Config:
    for name, content in (files or {}).items():
        path = base_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return parse_config(
        textwrap.dedent(text).removeprefix("\n"),
        source=SOURCE,
        environ=environ or {},
        base_dir=base_dir,
    )


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def resolve(expected: Config, base_dir: Path) -> Config:
    accounts = tuple(
        dataclasses.replace(a, api_key_file=a.api_key_file.replace(DIR, str(base_dir)))
        if a.api_key_file
        else a
        for a in expected.accounts
    )
    return dataclasses.replace(expected, accounts=accounts)


# --- good configs -------------------------------------------------------------------

GOOD = [
    pytest.param(
        f"""
        accounts:
          - provider: pictory
            account: marketing
            api_key: {KEY}
        """,
        {},
        {},
        Config(accounts=(account(),)),
        id="minimal: all defaults (5m, 10s, 3 x interval)",
    ),
    pytest.param(
        f"""
        global:
          interval: 10m
          timeout: 30s
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}}}
        """,
        {},
        {},
        Config(
            accounts=(account(name="a", interval=10 * MIN, timeout=30, max_staleness=30 * MIN),),
            interval=10 * MIN,
            timeout=30,
            max_staleness=30 * MIN,
        ),
        id="global interval and timeout; staleness follows the interval",
    ),
    pytest.param(
        f"""
        global:
          interval: 2m
          max_staleness: 1h
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}}}
        """,
        {},
        {},
        Config(
            accounts=(account(name="a", interval=2 * MIN, max_staleness=HOUR),),
            interval=2 * MIN,
            max_staleness=HOUR,
        ),
        id="global max_staleness",
    ),
    pytest.param(
        f"""
        global:
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}}}
        """,
        {},
        {},
        Config(accounts=(account(name="a"),)),
        id="empty global: defaults",
    ),
    pytest.param(
        f"""
        global:
          interval: 10m
        accounts:
          - provider: pictory
            account: fast
            api_key: {KEY}
            interval: 2m
            timeout: 5s
            max_staleness: 7m
          - provider: pictory
            account: slow
            api_key: {KEY2}
            interval: 1h
          - provider: tornado
            account: fast
            api_key: {KEY}
            timeout: 1m
        """,
        {},
        {},
        Config(
            accounts=(
                account(name="fast", interval=2 * MIN, timeout=5, max_staleness=7 * MIN),
                account(name="slow", key=KEY2, interval=HOUR, max_staleness=3 * HOUR),
                account("tornado", "fast", interval=10 * MIN, timeout=MIN, max_staleness=30 * MIN),
            ),
            interval=10 * MIN,
            max_staleness=30 * MIN,
        ),
        id="per-account overrides; same account name under another provider",
    ),
    pytest.param(
        """
        accounts:
          - provider: ${PROVIDER}
            account: ${TEAM}-${STAGE}
            api_key: ${PICTORY_API_KEY}
            base_url: http://127.0.0.1:${PORT}/mock
            interval: ${INTERVAL}
        """,
        {
            "PROVIDER": "pictory",
            "TEAM": "growth",
            "STAGE": "prod",
            "PICTORY_API_KEY": ENV_KEY,
            "PORT": "8080",
            "INTERVAL": "90s",
        },
        {},
        Config(
            accounts=(
                account(
                    name="growth-prod",
                    key=ENV_KEY,
                    interval=90,
                    max_staleness=270,
                    base_url="http://127.0.0.1:8080/mock",
                ),
            )
        ),
        id="${VAR} expansion in every field",
    ),
    pytest.param(
        f"""
        accounts:
          - provider: pictory
            account: a
            api_key: "{KEY}$$x$${{NOT_EXPANDED}}"
            base_url: $$
        """.replace("base_url: $$", "base_url: https://h/$$"),
        {},
        {},
        Config(
            accounts=(account(name="a", key=KEY + "$x${NOT_EXPANDED}", base_url="https://h/$"),)
        ),
        id="$$ is a literal $",
    ),
    pytest.param(
        """
        accounts:
          - provider: vertaaux
            account: prod
            api_key_file: secrets/vertaaux.key
          - provider: piloterr
            account: prod
            api_key_file: ./piloterr.key
        """,
        {},
        {"secrets/vertaaux.key": f"  {FILE_KEY}\n\n", "piloterr.key": f"\t{KEY2}\r\n"},
        Config(
            accounts=(
                account("vertaaux", "prod", FILE_KEY, api_key_file=f"{DIR}/secrets/vertaaux.key"),
                account("piloterr", "prod", KEY2, api_key_file=f"{DIR}/piloterr.key"),
            )
        ),
        id="api_key_file relative to the config dir, whitespace stripped",
    ),
    pytest.param(
        f"""
        accounts:
          - provider: vertaaux
            account: a
            api_key: "  {KEY}  "
            base_url: https://proxy.example:8443/vertaaux/
          - provider: tornado
            account: b
            api_key: {KEY}
            base_url: http://127.0.0.1:9000
          - provider: vidnavigator
            account: c
            api_key: {KEY}
            base_url: HTTP://[::1]:9000//
        """,
        {},
        {},
        Config(
            accounts=(
                account("vertaaux", "a", base_url="https://proxy.example:8443/vertaaux"),
                account("tornado", "b", base_url="http://127.0.0.1:9000"),
                account("vidnavigator", "c", base_url="HTTP://[::1]:9000"),
            )
        ),
        id="base_url trailing slashes stripped; api_key whitespace stripped",
    ),
    pytest.param(
        f"""
        accounts:
          - {{provider: pictory, account: A.b_c-9, api_key: {KEY}}}
          - {{provider: tornado, account: "1", api_key: 12345678}}
          - {{provider: piloterr, account: x, api_key: {KEY}}}
          - {{provider: vidnavigator, account: x, api_key: {KEY}}}
          - {{provider: vertaaux, account: x, api_key: {KEY}}}
        """,
        {},
        {},
        Config(
            accounts=(
                account("pictory", "A.b_c-9"),
                account("tornado", "1", "12345678"),
                account("piloterr", "x"),
                account("vidnavigator", "x"),
                account("vertaaux", "x"),
            )
        ),
        id="all five providers, flow style, a numeric key",
    ),
    pytest.param(
        f"""
        accounts:
          - provider: pictory
            account: a
            api_key: {KEY}
            interval: 30s
          - provider: tornado
            account: b
            api_key: {KEY}
            interval: 1m
        """,
        {},
        {},
        Config(
            accounts=(
                account(name="a", interval=30, max_staleness=90),
                account("tornado", "b", interval=MIN, max_staleness=3 * MIN),
            ),
            warnings=(
                f"{SOURCE}:5:15: accounts[0].interval: 30s is below pictory's recommended minimum"
                " of 1m; accepted, but it spends the vendor's rate limit for no fresher data",
            ),
        ),
        id="warning: interval under the provider minimum (and none at the minimum)",
    ),
    pytest.param(
        f"""
        global:
          interval: 5s
          timeout: 2s
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}}}
        """,
        {},
        {},
        Config(
            accounts=(account(name="a", interval=5, timeout=2, max_staleness=15),),
            interval=5,
            timeout=2,
            max_staleness=15,
            warnings=(
                f"{SOURCE}:5:5: accounts[0].interval: 5s is below pictory's recommended minimum"
                " of 1m; accepted, but it spends the vendor's rate limit for no fresher data",
            ),
        ),
        id="warning: a global interval under the minimum, at the account",
    ),
    pytest.param(
        """
        accounts: []
        """,
        {},
        {},
        Config(
            accounts=(),
            warnings=(f"{SOURCE}:1:11: accounts: no accounts configured; nothing to poll",),
        ),
        id="warning: empty account list",
    ),
    pytest.param(
        """
        global:
          interval: 1m
        accounts:
        """,
        {},
        {},
        Config(
            accounts=(),
            interval=MIN,
            max_staleness=3 * MIN,
            warnings=(f"{SOURCE}:3:10: accounts: no accounts configured; nothing to poll",),
        ),
        id="warning: accounts: with nothing under it",
    ),
]


@pytest.mark.parametrize(("text", "environ", "files", "expected"), GOOD)
def test_good_config(
    text: str, environ: dict[str, str], files: dict[str, str], expected: Config, tmp_path: Path
) -> None:
    config = parse(text, tmp_path, environ, files)
    assert config == resolve(expected, tmp_path)
    assert_no_secret(repr(config), *config.warnings)


def test_loaded_keys_are_registered_for_redaction(tmp_path: Path) -> None:
    (tmp_path / "k").write_text(FILE_KEY + "\n")
    parse(
        f"""
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}}}
          - {{provider: tornado, account: b, api_key: "${{TORNADO_KEY}}"}}
          - {{provider: piloterr, account: c, api_key_file: k}}
        """,
        tmp_path,
        {"TORNADO_KEY": ENV_KEY},
    )
    for key in (KEY, ENV_KEY, FILE_KEY):
        assert REDACTOR.scrub(key) == REDACTED
        assert REDACTOR.scrub(f"401: bad key {key}!") == f"401: bad key {REDACTED}!"


def test_account_derived_values(tmp_path: Path) -> None:
    config = parse(
        f"""
        accounts:
          - provider: vertaaux
            account: prod
            api_key: {KEY}
            base_url: https://proxy.example/vertaaux/
          - {{provider: tornado, account: prod, api_key: {KEY}}}
        """,
        tmp_path,
    )
    proxied, default = config.accounts
    assert proxied.key == ("vertaaux", "prod")
    assert proxied.adapter.name == "vertaaux"
    assert proxied.url == "https://proxy.example/vertaaux/api/v1/quota"
    assert default.url.endswith("/usage")
    assert default.url.startswith("https://")
    assert str(proxied.api_key) == REDACTED
    assert KEY not in repr(proxied)


def test_load_config_resolves_key_files_next_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    (conf_dir / "pictory.key").write_text(f"{FILE_KEY}\n")
    path = conf_dir / "exporter.yml"
    path.write_text("accounts:\n  - {provider: pictory, account: a, api_key_file: pictory.key}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("..") / "etc" / "exporter.yml", environ={})
    assert config.accounts[0].api_key == Secret(FILE_KEY)
    assert config.accounts[0].api_key_file == str(conf_dir / "pictory.key")


def test_load_config_reports_an_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yml"
    with pytest.raises(ConfigError) as info:
        load_config(missing, environ={})
    assert info.value.problems == (
        f"{missing}: cannot read config file: No such file or directory",
    )

    latin1 = tmp_path / "latin1.yml"
    latin1.write_bytes(b"accounts: []  # caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(latin1, environ={})
    assert info.value.problems == (
        f"{latin1}: config file is not UTF-8: invalid continuation byte",
    )


# --- bad configs --------------------------------------------------------------------

BAD = [
    # YAML syntax: position only; PyYAML's own message would quote the line (a key).
    pytest.param(
        f"""
        accounts:
          - provider: pictory
            account: marketing
            api_key: {KEY}: oops
        """,
        {},
        {},
        [f"{SOURCE}:4:40: YAML syntax error: mapping values are not allowed here"],
        id="yaml: colon after a key",
    ),
    pytest.param(
        f"""
        accounts:
          - provider: pictory
            account: marketing
            api_key: "{KEY}
        """,
        {},
        {},
        [
            f"{SOURCE}:5:1: YAML syntax error: while scanning a quoted scalar at line 4,"
            " found unexpected end of stream"
        ],
        id="yaml: unclosed quote",
    ),
    pytest.param(
        f"""
        accounts:
          - provider: pictory
            account: marketing
            api_key: *{KEY}
        """,
        {},
        {},
        [f"{SOURCE}:4:14: YAML syntax error: found undefined alias"],
        id="yaml: a key read as an alias is not named",
    ),
    pytest.param(
        f"""
        accounts:
          - provider: pictory
           account: {KEY}
        """,
        {},
        {},
        [
            f"{SOURCE}:3:4: YAML syntax error: while parsing a block collection at line 2,"
            " expected <block end>, but found '<block mapping start>'"
        ],
        id="yaml: bad indentation",
    ),
    pytest.param(
        "accounts:\n\t- provider: pictory\n",
        {},
        {},
        [
            f"{SOURCE}:2:1: YAML syntax error: while scanning for the next token,"
            " found character '\\t' that cannot start any token; use spaces, not tabs"
            " (YAML rejects a tab here; indentation must be spaces)"
        ],
        id="yaml: tab indentation",
    ),
    pytest.param(
        "accounts: []\n---\naccounts: []\n",
        {},
        {},
        [
            f"{SOURCE}:2:1: YAML syntax error: expected a single document in the stream at"
            " line 1, but found another document"
        ],
        id="yaml: two documents",
    ),
    pytest.param(
        f"accounts:\n  - api_key: {KEY}\x07\n",
        {},
        {},
        [
            f"{SOURCE}:2:40: YAML syntax error: unacceptable character #x0007:"
            " special characters are not allowed"
        ],
        id="yaml: control character",
    ),
    pytest.param("", {}, {}, [f"{SOURCE}: config file is empty; it needs 'accounts:'"], id="empty"),
    pytest.param(
        "# nothing yet\n",
        {},
        {},
        [f"{SOURCE}: config file is empty; it needs 'accounts:'"],
        id="only a comment",
    ),
    pytest.param(
        "---\n", {}, {}, [f"{SOURCE}: config file is empty; it needs 'accounts:'"], id="only ---"
    ),
    pytest.param(
        "- provider: pictory\n",
        {},
        {},
        [f"{SOURCE}:1:1: the top level must be a mapping with 'accounts:', got a list"],
        id="top level is a list",
    ),
    pytest.param(
        f"{KEY}\n",
        {},
        {},
        [f"{SOURCE}:1:1: the top level must be a mapping with 'accounts:', got a string"],
        id="top level is a string (never echoed)",
    ),
    pytest.param(
        """
        global:
          interval: 5m
        """,
        {},
        {},
        [f"{SOURCE}:1:1: missing 'accounts:' (a list of accounts to poll)"],
        id="missing accounts",
    ),
    pytest.param(
        f"""
        scrape_interval: 1m
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}}}
        """,
        {},
        {},
        [
            f"{SOURCE}:1:1: scrape_interval: unknown key 'scrape_interval';"
            " allowed keys: global, accounts, providers, provider_files"
        ],
        id="unknown top-level key",
    ),
    pytest.param(
        f"""
        global:
          intervall: 5m
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}}}
        """,
        {},
        {},
        [
            f"{SOURCE}:2:3: global.intervall: unknown key 'intervall';"
            " allowed keys: interval, timeout, max_staleness, concurrency, provider_concurrency,"
            " alerts"
        ],
        id="unknown global key",
    ),
    *(
        pytest.param(
            f"""
        global:
          concurrency: {value}
          provider_concurrency: {value}
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}}}
        """,
            {},
            {},
            [
                f"{SOURCE}:2:16: global.concurrency: expected a whole number from 1 to 1024,"
                f" got {shown}",
                f"{SOURCE}:3:25: global.provider_concurrency: expected a whole number from 1"
                f" to 1024, got {shown}",
            ],
            id=f"concurrency {value}",
        )
        for value, shown in [
            ("0", "0"),
            ("1025", "1025"),
            ("-3", "'-3'"),
            ("2.5", "'2.5'"),
            ("lots", "'lots'"),
            ("[8]", "a list"),
            ("''", "''"),
        ]
    ),
    pytest.param(
        f"""
        accounts:
          - provider: pictory
            account: a
            apikey: {KEY}
        """,
        {},
        {},
        [
            f"{SOURCE}:2:5: accounts[0]: missing api_key or api_key_file",
            f"{SOURCE}:4:5: accounts[0].apikey: unknown key 'apikey'; allowed keys: {ACCOUNT_KEYS}",
        ],
        id="unknown account key (the value is not echoed)",
    ),
    pytest.param(
        f"""
        accounts:
          - provider: pictory
            account: a
            api_key: {KEY}
            api_key: {KEY2}
        """,
        {},
        {},
        [f"{SOURCE}:5:5: accounts[0].api_key: duplicate key"],
        id="duplicate account key",
    ),
    pytest.param(
        f"""
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}}}
        accounts:
          - {{provider: pictory, account: b, api_key: {KEY}}}
        """,
        {},
        {},
        [f"{SOURCE}:3:1: accounts: duplicate key"],
        id="duplicate top-level key",
    ),
    pytest.param(
        f"""
        accounts:
          - {{provider: pictori, account: a, api_key: {KEY}}}
        """,
        {},
        {},
        [
            f"{SOURCE}:2:16: accounts[0].provider: unknown provider 'pictori';"
            f" valid providers: {PROVIDER_LIST}"
        ],
        id="unknown provider",
    ),
    pytest.param(
        f"""
        accounts:
          - {{account: a, api_key: {KEY}}}
          - {{provider: pictory, api_key: {KEY}}}
          - {{api_key: {KEY}}}
        """,
        {},
        {},
        [
            f"{SOURCE}:2:5: accounts[0].provider: is required",
            f"{SOURCE}:3:5: accounts[1].account: is required",
            f"{SOURCE}:4:5: accounts[2].provider: is required",
            f"{SOURCE}:4:5: accounts[2].account: is required",
        ],
        id="missing provider or account",
    ),
    pytest.param(
        f"""
        accounts:
          - {{provider: pictory, account: team a, api_key: {KEY}}}
          - {{provider: pictory, account: "b/c", api_key: {KEY}}}
          - {{provider: pictory, account: "", api_key: {KEY}}}
          - {{provider: pictory, account: , api_key: {KEY}}}
        """,
        {},
        {},
        [
            f"{SOURCE}:2:34: accounts[0].account: invalid account name 'team a':"
            " use letters, digits, '_', '.' and '-' only",
            f"{SOURCE}:3:34: accounts[1].account: invalid account name 'b/c':"
            " use letters, digits, '_', '.' and '-' only",
            f"{SOURCE}:4:34: accounts[2].account: invalid account name '':"
            " use letters, digits, '_', '.' and '-' only",
            f"{SOURCE}:5:33: accounts[3].account: is empty",
        ],
        id="invalid account names",
    ),
    pytest.param(
        f"""
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}}}
          - {{provider: tornado, account: a, api_key: {KEY}}}
          - {{provider: pictory, account: a, api_key: {KEY2}}}
        """,
        {},
        {},
        [
            f"{SOURCE}:4:5: accounts[2]: duplicate account 'a' for provider 'pictory'"
            " (first defined at accounts[0])"
        ],
        id="duplicate provider+account",
    ),
    pytest.param(
        f"""
        accounts:
          - provider: pictory
            account: a
            api_key: {KEY}
            api_key_file: pictory.key
          - provider: pictory
            account: b
        """,
        {},
        {"pictory.key": FILE_KEY},
        [
            f"{SOURCE}:2:5: accounts[0]: set exactly one of api_key and api_key_file, not both",
            f"{SOURCE}:6:5: accounts[1]: missing api_key or api_key_file",
        ],
        id="both or neither of api_key and api_key_file",
    ),
    pytest.param(
        """
        accounts:
          - provider: pictory
            account: a
            api_key:
          - provider: pictory
            account: b
            api_key: ""
          - provider: pictory
            account: c
            api_key: "   "
          - provider: pictory
            account: d
            api_key: ${EMPTY}
        """,
        {"EMPTY": ""},
        {},
        [
            f"{SOURCE}:4:13: accounts[0].api_key: is empty",
            f"{SOURCE}:7:14: accounts[1].api_key: is empty",
            f"{SOURCE}:10:14: accounts[2].api_key: is empty",
            f"{SOURCE}:13:14: accounts[3].api_key: environment variable EMPTY is set but"
            " empty: give it a value, or unset it and fix the config",
        ],
        id="empty api_key",
    ),
    pytest.param(
        """
        accounts:
          - {provider: pictory, account: a, api_key_file: nope.key}
          - {provider: pictory, account: b, api_key_file: empty.key}
          - {provider: pictory, account: c, api_key_file: blank.key}
          - {provider: pictory, account: d, api_key_file: keys}
          - {provider: pictory, account: e, api_key_file: }
        """,
        {},
        {"empty.key": "", "blank.key": " \n\t\n", "keys/x": FILE_KEY},
        [
            f"{SOURCE}:2:51: accounts[0].api_key_file: cannot read {DIR}/nope.key:"
            " No such file or directory",
            f"{SOURCE}:3:51: accounts[1].api_key_file: {DIR}/empty.key is empty",
            f"{SOURCE}:4:51: accounts[2].api_key_file: {DIR}/blank.key is empty",
            f"{SOURCE}:5:51: accounts[3].api_key_file: cannot read {DIR}/keys: is a directory,"
            " not a regular file",
            f"{SOURCE}:6:50: accounts[4].api_key_file: is empty",
        ],
        id="missing, empty or unreadable key file",
    ),
    pytest.param(
        """
        accounts:
          - provider: pictory
            account: ${TEAM}
            api_key: ${PICTORY_API_KEY}
            base_url: https://${PROXY_HOST}/
          - provider: pictory
            account: b
            api_key: ${}x${1BAD}
        """,
        {"TEAM": "growth"},
        {},
        [
            f"{SOURCE}:4:14: accounts[0].api_key: environment variable PICTORY_API_KEY is not set",
            f"{SOURCE}:5:15: accounts[0].base_url: environment variable PROXY_HOST is not set",
            f"{SOURCE}:8:14: accounts[1].api_key: empty environment variable reference ${{}}:"
            " put a variable name inside",
            # Not echoed: what is inside a bad ${...} in api_key may be the key.
            f"{SOURCE}:8:14: accounts[1].api_key: invalid environment variable reference"
            " ${...}; did you paste the key itself inside ${...}? write"
            " `api_key: ${ENV_VAR_NAME}` or the key without ${}",
        ],
        id="unset or malformed environment variables are named",
    ),
    pytest.param(
        f"""
        global:
          interval: 5 minutes
          timeout: 10sec
        accounts:
          - provider: pictory
            account: a
            api_key: {KEY}
            max_staleness: 1.5h
        """,
        {},
        {},
        [
            f"{SOURCE}:2:13: global.interval: not a duration: '5 minutes' ({GRAMMAR_HINT})",
            f"{SOURCE}:3:12: global.timeout: not a duration: '10sec' ({GRAMMAR_HINT})",
            f"{SOURCE}:8:20: accounts[0].max_staleness: not a duration: '1.5h' ({GRAMMAR_HINT})",
        ],
        id="bad durations",
    ),
    pytest.param(
        f"""
        global:
          interval: 300
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}, timeout: 10}}
        """,
        {},
        {},
        [
            f"{SOURCE}:2:13: global.interval: not a duration: '300' (add a unit, e.g. 300s or 5m)",
            f"{SOURCE}:4:83: accounts[0].timeout: not a duration: '10'"
            " (add a unit, e.g. 300s or 5m)",
        ],
        id="bare numbers get a hint",
    ),
    pytest.param(
        f"""
        global:
          interval: 500ms
          timeout: 0s
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}, interval: 0}}
          - {{provider: pictory, account: b, api_key: {KEY}, max_staleness: 999ms}}
        """,
        {},
        {},
        [
            f"{SOURCE}:2:13: global.interval: 500ms is too short; the minimum is 1s",
            f"{SOURCE}:3:12: global.timeout: 0s is too short; the minimum is 1ms",
            f"{SOURCE}:5:84: accounts[0].interval: 0 is too short; the minimum is 1s",
            f"{SOURCE}:6:89: accounts[1].max_staleness: 999ms is too short; the minimum is 1s",
        ],
        id="durations under the minimum",
    ),
    pytest.param(
        f"""
        global:
          interval: 1m
          timeout: 1m
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}}}
          - {{provider: pictory, account: b, api_key: {KEY}}}
        """,
        {},
        {},
        [f"{SOURCE}:3:12: global.timeout: timeout 1m must be shorter than the interval 1m"],
        id="global timeout >= interval: once, not per account",
    ),
    pytest.param(
        f"""
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}, timeout: 6m}}
          - {{provider: pictory, account: b, api_key: {KEY}, interval: 5s}}
        """,
        {},
        {},
        [
            f"{SOURCE}:2:83: accounts[0].timeout: timeout 6m must be shorter than the interval 5m",
            f"{SOURCE}:3:84: accounts[1].interval: timeout 10s must be shorter than the interval"
            " 5s",
        ],
        id="account timeout >= interval, at the field the account sets",
    ),
    pytest.param(
        f"""
        global:
          interval: 10m
          max_staleness: 5m
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}, max_staleness: 1m}}
          - {{provider: pictory, account: b, api_key: {KEY}}}
        """,
        {},
        {},
        [
            f"{SOURCE}:3:18: global.max_staleness: max_staleness 5m is shorter than the interval"
            " 10m: values would vanish between polls",
            f"{SOURCE}:5:89: accounts[0].max_staleness: max_staleness 1m is shorter than the"
            " interval 10m: values would vanish between polls",
        ],
        id="max_staleness < interval",
    ),
    pytest.param(
        f"""
        global:
          max_staleness: 30m
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}, interval: 1h}}
        """,
        {},
        {},
        [
            f"{SOURCE}:4:84: accounts[0].interval: max_staleness 30m is shorter than the interval"
            " 1h: values would vanish between polls",
        ],
        id="an account interval above the global max_staleness",
    ),
    pytest.param(
        f"""
        global:
          interval: soon
          timeout: 10m
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}, interval: soon, timeout: 10m}}
          - {{provider: pictory, account: b, api_key: {KEY}, max_staleness: 1m, timeout: x}}
        """,
        {},
        {},
        [
            f"{SOURCE}:2:13: global.interval: not a duration: 'soon' ({GRAMMAR_HINT})",
            f"{SOURCE}:5:84: accounts[0].interval: not a duration: 'soon' ({GRAMMAR_HINT})",
            f"{SOURCE}:6:102: accounts[1].timeout: not a duration: 'x' ({GRAMMAR_HINT})",
        ],
        # One rule for both blocks: the unreadable value is the thing to fix, not a
        # comparison of the other value with the default standing in for it.
        id="an unreadable duration is not also compared, in global or an account",
    ),
    pytest.param(
        f"""
        accounts:
          - {{provider: pictory, account: a, api_key: {KEY}, base_url: example.com}}
          - {{provider: pictory, account: b, api_key: {KEY}, base_url: "ftp://example.com"}}
          - {{provider: pictory, account: c, api_key: {KEY}, base_url: "https://h/?a=1"}}
          - {{provider: pictory, account: d, api_key: {KEY}, base_url: "https://h/#top"}}
          - {{provider: pictory, account: e, api_key: {KEY}, base_url: "http://"}}
          - {{provider: pictory, account: f, api_key: {KEY}, base_url: "https://h:port"}}
          - {{provider: pictory, account: g, api_key: {KEY}, base_url: "https://h:70000"}}
          - {{provider: pictory, account: h, api_key: {KEY}, base_url: "http://[::1"}}
        """,
        {},
        {},
        [
            f"{SOURCE}:2:84: accounts[0].base_url: invalid URL 'example.com':"
            " need http:// or https:// and a host",
            f"{SOURCE}:3:84: accounts[1].base_url: invalid URL 'ftp://example.com':"
            " need http:// or https:// and a host",
            f"{SOURCE}:4:84: accounts[2].base_url: invalid URL 'https://h/?a=1':"
            " no query or fragment allowed",
            f"{SOURCE}:5:84: accounts[3].base_url: invalid URL 'https://h/#top':"
            " no query or fragment allowed",
            f"{SOURCE}:6:84: accounts[4].base_url: invalid URL 'http://':"
            " need http:// or https:// and a host",
            f"{SOURCE}:7:84: accounts[5].base_url: invalid URL 'https://h:port':"
            " the port must be a number 0-65535",
            f"{SOURCE}:8:84: accounts[6].base_url: invalid URL 'https://h:70000':"
            " the port must be a number 0-65535",
            f"{SOURCE}:9:84: accounts[7].base_url: invalid URL 'http://[::1': Invalid IPv6 URL",
        ],
        id="malformed base_url",
    ),
    pytest.param(
        f"""
        accounts:
          - provider: pictory
            account: a
            api_key: {KEY}
            base_url: https://user:pw_FAKEPASSWORD_77@proxy.example
          - provider: pictory
            account: b
            api_key: {KEY}
            base_url: https://user:pw_FAKEPASSWORD_77@proxy.example:bad
          - provider: pictory
            account: c
            api_key: {KEY}
            base_url: user:pw_FAKEPASSWORD_77@proxy.example
        """,
        {},
        {},
        [
            f"{SOURCE}:5:15: accounts[0].base_url: invalid URL: user or password in a URL"
            " is not allowed",
            f"{SOURCE}:9:15: accounts[1].base_url: invalid URL: user or password in a URL"
            " is not allowed",
            f"{SOURCE}:13:15: accounts[2].base_url: invalid URL: user or password in a URL"
            " is not allowed",
        ],
        id="credentials in base_url are refused and never echoed",
    ),
    pytest.param(
        f"""
        global: [interval]
        accounts:
          - provider: [pictory, tornado]
            account: {{name: a}}
            api_key: [{KEY}]
            interval: [5m]
          - pictory
          - {{provider: tornado, account: b, api_key: {{value: {KEY}}}}}
        """,
        {},
        {},
        [
            f"{SOURCE}:1:9: global: expected a mapping, got a list",
            f"{SOURCE}:3:15: accounts[0].provider: expected a string, got a list",
            f"{SOURCE}:4:14: accounts[0].account: expected a string, got a mapping",
            f"{SOURCE}:5:14: accounts[0].api_key: expected a string, got a list",
            f"{SOURCE}:6:15: accounts[0].interval: expected a string, got a list",
            f"{SOURCE}:7:5: accounts[1]: expected a mapping, got a string",
            f"{SOURCE}:8:46: accounts[2].api_key: expected a string, got a mapping",
        ],
        id="wrong types",
    ),
    pytest.param(
        f"""
        accounts:
          provider: pictory
          account: a
          api_key: {KEY}
        """,
        {},
        {},
        [f"{SOURCE}:2:3: accounts: expected a list of accounts, got a mapping"],
        id="a mapping where the account list belongs",
    ),
    pytest.param(
        f"""
        global:
          interval: 5
          colour: blue
        accounts:
          - provider: pictori
            account: a b
            api_key: {KEY}
            base_url: ftp://h
            region: eu
          - provider: pictory
            account: ok
          - provider: pictory
            account: ok
            api_key: ${{UNSET_KEY}}
        extra: true
        """,
        {},
        {},
        [
            f"{SOURCE}:2:13: global.interval: not a duration: '5' (add a unit, e.g. 300s or 5m)",
            f"{SOURCE}:3:3: global.colour: unknown key 'colour';"
            " allowed keys: interval, timeout, max_staleness, concurrency, provider_concurrency,"
            " alerts",
            f"{SOURCE}:5:15: accounts[0].provider: unknown provider 'pictori';"
            f" valid providers: {PROVIDER_LIST}",
            f"{SOURCE}:6:14: accounts[0].account: invalid account name 'a b':"
            " use letters, digits, '_', '.' and '-' only",
            f"{SOURCE}:8:15: accounts[0].base_url: invalid URL 'ftp://h':"
            " need http:// or https:// and a host",
            f"{SOURCE}:9:5: accounts[0].region: unknown key 'region'; allowed keys: {ACCOUNT_KEYS}",
            f"{SOURCE}:10:5: accounts[1]: missing api_key or api_key_file",
            f"{SOURCE}:14:14: accounts[2].api_key: environment variable UNSET_KEY is not set",
            f"{SOURCE}:15:1: extra: unknown key 'extra';"
            " allowed keys: global, accounts, providers, provider_files",
        ],
        id="several errors at once, in document order",
    ),
]


@pytest.mark.parametrize(("text", "environ", "files", "problems"), BAD)
def test_bad_config(
    text: str,
    environ: dict[str, str],
    files: dict[str, str],
    problems: list[str],
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, tmp_path, environ, files)
    expected = [p.replace(DIR, str(tmp_path)) for p in problems]
    assert list(info.value.problems) == expected
    assert str(info.value) == "\n".join(expected)
    assert_no_secret(str(info.value))


def test_environment_values_of_keys_are_not_echoed(tmp_path: Path) -> None:
    # The key came from the environment and the account is broken in another way.
    with pytest.raises(ConfigError) as info:
        parse(
            """
            accounts:
              - {provider: nope, account: a, api_key: "${K}"}
            """,
            tmp_path,
            {"K": ENV_KEY},
        )
    assert info.value.problems == (
        f"{SOURCE}:2:16: accounts[0].provider: unknown provider 'nope';"
        f" valid providers: {PROVIDER_LIST}",
    )
    assert REDACTOR.scrub(ENV_KEY) == REDACTED


def test_provider_default_interval_applies_when_global_sets_none() -> None:
    config = parse_config(
        "accounts:\n  - {provider: piloterr, account: a, api_key: piloterr_k_123456}\n",
        environ={},
    )
    account = config.accounts[0]
    assert account.interval == PROVIDERS["piloterr"].default_interval
    assert account.max_staleness == 3 * PROVIDERS["piloterr"].default_interval


# --- the registry accounts are resolved in ----------------------------------------------


def _own_registry() -> dict[str, Provider]:
    """A registry the loader is handed: one made-up vendor, none of the built-in ones."""

    def remark(key: str) -> str | None:
        return "an acme test key" if key.startswith("acme_test_") else None

    acme = dataclasses.replace(
        PROVIDERS["pictory"],
        name="acme",
        default_base_url="https://api.acme.test",
        path="/quota",
        default_interval=7200.0,
        min_interval=1800.0,
        key_warning=remark,
    )
    return {"acme": acme}


def test_accounts_are_resolved_in_the_registry_the_loader_is_given(tmp_path: Path) -> None:
    registry = _own_registry()
    path = tmp_path / "exporter.yml"
    path.write_text(
        "accounts:\n"
        "  - {provider: acme, account: a, api_key: acme_test_123456}\n"
        "  - {provider: acme, account: b, api_key: acme_live_123456, interval: 1m}\n"
    )
    config = load_config(path, environ={}, providers=registry)
    first, second = config.accounts
    # The given object itself, resolved once; its defaults, floor and key check apply.
    assert first.adapter is registry["acme"]
    assert first.url == "https://api.acme.test/quota"
    assert first.interval == 7200.0
    assert first.max_staleness == 3 * 7200.0
    assert second.interval == 60.0
    assert config.warnings == (
        f"{path}:2:5: accounts[0]: an acme test key",
        f"{path}:3:71: accounts[1].interval: 1m is below acme's recommended minimum of 30m;"
        " accepted, but it spends the vendor's rate limit for no fresher data",
    )
    # A built-in name is unknown to a registry that does not hold it, and the message
    # offers what the given registry holds.
    with pytest.raises(ConfigError) as info:
        parse_config(
            f"accounts:\n  - {{provider: pictory, account: a, api_key: {KEY}}}\n",
            source=SOURCE,
            environ={},
            providers=registry,
        )
    assert info.value.problems == (
        f"{SOURCE}:2:16: accounts[0].provider: unknown provider 'pictory'; valid providers: acme",
    )


def test_an_unchanged_account_is_equal_across_two_loads(tmp_path: Path) -> None:
    # The poller compares configs by value on reload: an account that did not change
    # keeps its state only if it compares equal, and differs when its provider does.
    text = f"accounts:\n  - {{provider: pictory, account: a, api_key: {KEY}}}\n"
    first = parse(text, tmp_path)
    second = parse(text, tmp_path)
    assert first.accounts[0] is not second.accounts[0]
    assert first == second
    assert hash(first.accounts[0]) == hash(second.accounts[0])
    changed = dataclasses.replace(PROVIDERS["pictory"], min_interval=120.0)
    third = parse_config(text, environ={}, providers={"pictory": changed})
    assert third.accounts[0] != first.accounts[0]
    assert third.accounts[0].adapter is changed


def test_an_account_names_the_provider_it_is_resolved_to() -> None:
    with pytest.raises(ValueError, match="resolved to the adapter named 'tornado'"):
        dataclasses.replace(account(), adapter=PROVIDERS["tornado"])


def test_vertaaux_sandbox_key_is_accepted_with_a_warning_that_does_not_quote_it() -> None:
    key = "vx_test_sandbox_key_0123456789"
    config = parse_config(
        f"accounts:\n  - {{provider: vertaaux, account: sandbox, api_key: {key}}}\n",
        source="c.yml",
        environ={},
    )
    assert config.warnings == (
        "c.yml:2:5: accounts[0]: this is a vx_test_ sandbox key: its quota does not reflect"
        " live usage",
    )
    assert key not in "".join(config.warnings)


# --- what can only fail later is caught at load -------------------------------------


def one_account(extra: str, key: str = KEY) -> str:
    return f'accounts:\n  - {{provider: pictory, account: a, api_key: "{key}"{extra}}}\n'


@pytest.mark.parametrize(
    ("key", "described"),
    [
        (f"{KEY[:11]}\u200b{KEY[11:]}", "U+200B (ZERO WIDTH SPACE) at position 12"),
        (f"\ufeff{KEY}", "U+FEFF (ZERO WIDTH NO-BREAK SPACE) at position 1"),
        (f"{KEY[:5]}\u00e9{KEY[5:]}", "U+00E9 (LATIN SMALL LETTER E WITH ACUTE) at position 6"),
        (f"{KEY[:3]}\\t{KEY[3:]}", "U+0009 (TAB) at position 4"),
        (f"{KEY[:3]}\\n{KEY[3:]}", "U+000A (LINE FEED) at position 4"),
        (f"{KEY[:3]}\\x7f{KEY[3:]}", "U+007F (DELETE) at position 4"),
    ],
)
def test_a_key_that_is_not_header_text_is_a_config_error_that_never_quotes_it(
    tmp_path: Path, key: str, described: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse(one_account("", key), tmp_path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{SOURCE}:2:46: accounts[0].api_key: contains {described};")
    assert_no_secret(problem)
    assert KEY[:8] not in problem
    assert KEY[-8:] not in problem


def test_a_key_file_with_an_invisible_character_is_a_config_error(tmp_path: Path) -> None:
    text = "accounts:\n  - {provider: pictory, account: a, api_key_file: k.key}\n"
    with pytest.raises(ConfigError) as info:
        parse(text, tmp_path, files={"k.key": f"{FILE_KEY}\u200b\n"})
    (problem,) = info.value.problems
    assert "accounts[0].api_key_file: the key in" in problem
    assert f"U+200B (ZERO WIDTH SPACE) at position {len(FILE_KEY) + 1};" in problem
    assert_no_secret(problem)


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        # urlsplit drops a TAB or newline silently; httpx rejects the URL at poll time.
        ("http://ex\\tample.com", "invalid URL: U+0009 (TAB) at position 10"),
        ("http://example.com\\n/x", "invalid URL: U+000A (LINE FEED) at position 19"),
        ("http://exa mple.com", "invalid URL: U+0020 (SPACE) at position 11"),
        ("http://\u200bexample.com", "invalid URL: U+200B (ZERO WIDTH SPACE) at position 8"),
        ("http://\u00a0example.com", "invalid URL: U+00A0 (NO-BREAK SPACE) at position 8"),
        ("http://[::1]:99999", "invalid URL 'http://[::1]:99999': the port must be a number"),
    ],
)
def test_a_base_url_httpx_would_reject_is_a_config_error(
    tmp_path: Path, base_url: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse(one_account(f', base_url: "{base_url}"'), tmp_path)
    (problem,) = info.value.problems
    assert "accounts[0].base_url: " + message in problem
    assert_no_secret(problem)


def test_every_accepted_base_url_is_one_httpx_takes(tmp_path: Path) -> None:
    import httpx

    # An invalid IDNA label passes urlsplit; httpx refuses it: caught with the reason.
    with pytest.raises(ConfigError) as info:
        parse(one_account(', base_url: "http://\u2603.example"'), tmp_path)
    (problem,) = info.value.problems
    assert "accounts[0].base_url: invalid URL 'http://\u2603.example': Invalid IDNA" in problem
    config = parse(one_account(', base_url: "http://bücher.example/api"'), tmp_path)
    httpx.URL(config.accounts[0].url)


# --- bounded reading: limits on YAML and on every file a load reads ---------------------


def test_yaml_nested_thousands_deep_is_a_config_error_with_a_position(tmp_path: Path) -> None:
    for text in (
        "accounts: " + "[" * 5000,
        "accounts:\n" + "".join(" " * i + "- \n" for i in range(0, 2000, 1)),
        "a: " + "{b: " * 3000,
    ):
        with pytest.raises(ConfigError) as info:
            parse(text, tmp_path)
        (problem,) = info.value.problems
        assert problem.startswith(f"{SOURCE}:")
        assert ": YAML nested deeper than 64 levels" in problem, problem


def test_a_yaml_alias_bomb_is_a_config_error(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, 10):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 9)}]")
    lines.append("accounts: *a9")
    with pytest.raises(ConfigError) as info:
        parse("\n".join(lines) + "\n", tmp_path)
    (problem,) = info.value.problems
    # 81 aliases, each level nine times the last: 9**9 nodes if anything walked it;
    # the count passes the limit at a7 (line 8: 9**7 nodes).
    assert problem.startswith(f"{SOURCE}:8:")
    assert problem.endswith(": YAML aliases expand it to more than 2000000 nodes")


def test_more_than_100_aliases_is_a_config_error(tmp_path: Path) -> None:
    text = "x: &x 1\ny: [" + ", ".join(["*x"] * 101) + "]\n"
    with pytest.raises(ConfigError) as info:
        parse(text, tmp_path)
    assert info.value.problems == (
        f"{SOURCE}:2:405: YAML more than 100 aliases (*name); write the values out",
    )


def test_a_few_aliases_are_still_fine(tmp_path: Path) -> None:
    text = """
        global: &g {interval: 10m}
        accounts:
          - &acct {provider: pictory, account: a, api_key: KEY}
          - {provider: tornado, account: b, api_key: KEY}
        """.replace("KEY", KEY)
    assert len(parse(text, tmp_path).accounts) == 2


def key_file_config(tmp_path: Path, key_path: Path | str) -> Path:
    config = tmp_path / "exporter.yml"
    config.write_text(
        f"accounts:\n  - {{provider: pictory, account: a, api_key_file: '{key_path}'}}\n"
    )
    return config


def test_a_key_file_that_is_a_fifo_fails_at_once_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as info:
        load_config(key_file_config(tmp_path, fifo), environ={})
    assert info.value.problems[0].endswith(
        f"accounts[0].api_key_file: cannot read {fifo}: is a FIFO (named pipe), not a regular file"
    )


def test_a_key_file_that_is_a_device_or_huge_is_refused_without_reading_it(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(key_file_config(tmp_path, "/dev/zero"), environ={})
    assert info.value.problems[0].endswith(
        "cannot read /dev/zero: is a character device, not a regular file"
    )
    huge = tmp_path / "huge.key"
    with huge.open("wb") as f:
        f.truncate(512 * 1024 * 1024)  # sparse: no disk used
    with pytest.raises(ConfigError) as info:
        load_config(key_file_config(tmp_path, huge), environ={})
    assert info.value.problems[0].endswith(
        f"cannot read {huge}: is 536870912 bytes; the limit is 64 KiB"
    )


def test_the_config_file_itself_is_bounded_and_must_be_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as info:
        load_config(fifo, environ={})
    assert info.value.problems == (
        f"{fifo}: cannot read config file: is a FIFO (named pipe), not a regular file",
    )
    huge = tmp_path / "huge.yml"
    with huge.open("wb") as f:
        f.truncate(17 * 1024 * 1024)
    with pytest.raises(ConfigError) as info:
        load_config(huge, environ={})
    assert info.value.problems == (
        f"{huge}: cannot read config file: is 17825792 bytes; the limit is 16 MiB",
    )


# --- properties: any text is a Config or a ConfigError, never another exception -------


FUZZ_KEY = "sk_FUZZ_0a1b2c3d4e5f_KEY"
_ODD = st.sampled_from(
    ["\t", "\n", "\u200b", "\ufeff", "\x00", "\x85", "\u2028", "\ud7ff", "\U0001f600", "é"]
)
_LEAF = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=_ODD, max_size=4),
    st.sampled_from(
        [
            "",
            "~",
            "null",
            "5m",
            "0s",
            "1e400",
            "-1",
            "yes",
            "[]",
            "{}",
            "*a",
            "&a x",
            "${HOME}",
            "$$",
            "!!binary AAA",
            "http://\t.com",
            "http://[::1",
            "2001-02-30",
            "1" * 5000,
            "pictory",
            "tornado",
            FUZZ_KEY,
        ]
    ),
)
_FIELDS = (
    "provider",
    "account",
    "api_key",
    "api_key_file",
    "base_url",
    "interval",
    "timeout",
    "max_staleness",
    "bogus",
)


@st.composite
def config_texts(draw: st.DrawFn) -> str:
    """YAML built from a valid config with mutated leaves, nesting, anchors, tabs."""
    lines = ["global:"]
    if draw(st.booleans()):
        lines.append(f"  interval: {draw(st.sampled_from(['5m', '10s', '1h']))}")
    lines.append("accounts:")
    for index in range(draw(st.integers(0, 3))):
        anchor = f" &acc{index}" if draw(st.booleans()) else ""
        lines.append(f"  -{anchor}")
        for name in draw(st.lists(st.sampled_from(_FIELDS), min_size=1, max_size=5)):
            value = draw(_LEAF)
            style = draw(st.sampled_from(["plain", "double", "single", "flow"]))
            if style == "double":
                value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            elif style == "single":
                value = "'" + value.replace("'", "''") + "'"
            elif style == "flow":
                value = "[" + value + "]"
            lines.append(f"    {name}: {value}")
        lines.append(f"    api_key: {FUZZ_KEY}")
    if draw(st.booleans()):
        lines.append("  - *acc0")
    if draw(st.booleans()):
        depth = draw(st.integers(1, 400))
        lines.append("  - " + "[" * depth + "]" * draw(st.integers(0, depth)))
    text = "\n".join(lines) + "\n"
    if draw(st.booleans()):
        position = draw(st.integers(0, len(text)))
        text = (
            text[:position] + draw(st.text(alphabet=_ODD, min_size=1, max_size=3)) + text[position:]
        )
    return text


def _check_outcome(text: str, tmp_path: Path) -> None:
    problems: tuple[str, ...] = ()
    try:
        parse_config(text, source=SOURCE, environ={"HOME": "/root"}, base_dir=tmp_path)
    except ConfigError as exc:
        problems = exc.problems or ("<no problems listed>",)
    if problems:
        for problem in problems:
            # file:line:col, or the file alone for a file-wide problem (it is empty).
            positioned = re.match(rf"{re.escape(SOURCE)}:\d+:\d+: ", problem)
            assert positioned or problem.startswith(f"{SOURCE}: config file is empty"), problem
            assert FUZZ_KEY not in problem, problem


_FAST = settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@_FAST
@given(st.text(max_size=300))
def test_any_text_is_a_config_or_a_config_error(tmp_path: Path, text: str) -> None:
    _check_outcome(text, tmp_path)


@_FAST
@given(config_texts())
def test_any_mutated_config_is_a_config_or_a_positioned_error_without_the_key(
    tmp_path: Path, text: str
) -> None:
    _check_outcome(text, tmp_path)


# --- ${...} around a pasted key -------------------------------------------------------------

PASTED_HINT = (
    "; did you paste the key itself inside ${...}? write `api_key: ${ENV_VAR_NAME}`"
    " or the key without ${}"
)


@pytest.mark.parametrize(
    ("inside", "message"),
    [
        # Not a variable name at all: never echoed, in any field.
        ("pk-FAKEPASTED-7f3e9a", "invalid environment variable reference ${...}" + PASTED_HINT),
        ("abc-def", "invalid environment variable reference ${...}" + PASTED_HINT),
        ("sk live FAKE 1", "invalid environment variable reference ${...}" + PASTED_HINT),
        # A valid name, but not one a person would choose: it may be the key.
        (
            "sk_live_FAKEPASTED_4d1e7a2b",
            "the environment variable in ${...} is not set (its name is not shown: it does"
            " not look like a variable name)" + PASTED_HINT,
        ),
        (
            "AKIAFAKEPASTED7EXAMPLE",
            "the environment variable in ${...} is not set (its name is not shown: it does"
            " not look like a variable name)" + PASTED_HINT,
        ),
        # A conventional name is still named: the user needs to know which one.
        ("PICTORY_API_KEY", "environment variable PICTORY_API_KEY is not set"),
        ("", "empty environment variable reference ${}: put a variable name inside"),
    ],
)
def test_a_key_pasted_inside_env_reference_is_never_echoed(
    inside: str, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as info:
        parse(
            f"accounts:\n  - {{provider: pictory, account: a, api_key: '${{{inside}}}'}}\n",
            tmp_path,
        )
    assert info.value.problems == (f"{SOURCE}:2:46: accounts[0].api_key: {message}",)
    if inside and inside != "PICTORY_API_KEY":
        # Not shown here, and scrubbed from every other road out (logs, `/`, reload).
        assert REDACTOR.scrub(f"x {inside} y") == f"x {REDACTED} y"


def test_bad_env_references_in_other_fields_do_not_echo_the_contents(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse(
            "accounts:\n"
            "  - {provider: pictory, account: '${team-a}', api_key: k_FAKE_123456,"
            " base_url: 'http://h:${port}'}\n",
            tmp_path,
        )
    assert info.value.problems == (
        f"{SOURCE}:2:34: accounts[0].account: invalid environment variable reference ${{...}}"
        " (contents not shown): a variable name has only letters, digits and '_' and does"
        " not start with a digit",
        # Outside api_key a valid name is shown whatever its case.
        f"{SOURCE}:2:81: accounts[0].base_url: environment variable port is not set",
    )


def test_two_bad_references_in_one_value_are_one_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse("accounts:\n  - {provider: pictory, account: a, api_key: '${a-b}${c-d}'}\n", tmp_path)
    assert len(info.value.problems) == 1


# --- params of declarative providers -------------------------------------------------------


def test_params_reach_the_request() -> None:
    config = parse_config(
        "accounts:\n  - provider: twilio\n    account: main\n    api_key: tok_0123456789\n"
        "    params: {account_sid: AC0123}\n",
        source="exporter.yml",
    )
    account = config.accounts[0]
    assert account.params == (("account_sid", "AC0123"),)
    assert account.url == "https://api.twilio.com/2010-04-01/Accounts/AC0123/Balance.json"
    assert account.request().headers["Authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            "",
            "exporter.yml:2:5: accounts[0]: provider 'twilio' needs params.account_sid (its"
            " request uses {params.account_sid}); add params: {account_sid: ...}",
        ),
        (
            "    params: {account_sid: AC1, region: eu}\n",
            "exporter.yml:5:13: accounts[0].params.region: provider 'twilio' uses no param"
            " 'region'; it uses account_sid",
        ),
        (
            "    params: [AC1]\n",
            "exporter.yml:5:13: accounts[0].params: expected a mapping of strings, got a list",
        ),
        (
            "    params: {account_sid: {nested: 1}}\n",
            "exporter.yml:5:27: accounts[0].params.account_sid: expected a string, got a mapping",
        ),
    ],
    ids=["missing", "unknown", "not-a-mapping", "not-a-string"],
)
def test_bad_params(params: str, expected: str) -> None:
    text = (
        "accounts:\n  - provider: twilio\n    account: main\n    api_key: tok_0123456789\n" + params
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="exporter.yml")
    assert expected in info.value.problems


def test_concurrency_keys_default_and_load(tmp_path: Path) -> None:
    from exporter.config import DEFAULT_CONCURRENCY

    plain = parse(f"accounts:\n  - {{provider: pictory, account: a, api_key: {KEY}}}\n", tmp_path)
    assert (plain.concurrency, plain.provider_concurrency) == (DEFAULT_CONCURRENCY, None)
    assert PROVIDERS["pictory"].max_concurrency >= 40  # 10,000 keys at 200 ms within 60 s
    set_ = parse(
        "global: {concurrency: 200, provider_concurrency: 7}\n"
        f"accounts:\n  - {{provider: pictory, account: a, api_key: {KEY}}}\n",
        tmp_path,
    )
    assert (set_.concurrency, set_.provider_concurrency) == (200, 7)


# --- first run: the mistakes a new user makes, each answered with its fix ---------------


def _pictory(api_key: str) -> str:
    return f"accounts:\n  - provider: pictory\n    account: marketing\n    api_key: {api_key}\n"


@pytest.mark.parametrize(
    ("environ", "state"),
    [({"PICTORY_API_KEY": ENV_KEY}, "is set"), ({}, "is not set")],
    ids=["set", "unset-conventional"],
)
def test_an_unbraced_variable_is_used_literally_with_a_warning_naming_it(
    environ: dict[str, str], state: str, tmp_path: Path
) -> None:
    config = parse(_pictory("$PICTORY_API_KEY"), tmp_path, environ=environ)
    assert config.accounts[0].api_key.reveal() == "$PICTORY_API_KEY"  # as written
    assert config.warnings == (
        f"{SOURCE}:4:14: accounts[0].api_key: $PICTORY_API_KEY is used literally, dollar sign"
        f" included; to read the environment variable PICTORY_API_KEY (which {state})"
        " write ${PICTORY_API_KEY}",
    )
    assert_no_secret(*config.warnings)


def test_an_unbraced_variable_set_in_the_environment_is_named_whatever_its_case(
    tmp_path: Path,
) -> None:
    config = parse(_pictory("$pictory_key"), tmp_path, environ={"pictory_key": ENV_KEY})
    assert [w.split(": ", 2)[2] for w in config.warnings] == [
        "$pictory_key is used literally, dollar sign included; to read the environment"
        " variable pictory_key (which is set) write ${pictory_key}"
    ]


@pytest.mark.parametrize(
    "key",
    ["$sk_live_4f2a9c7e1b", "$k3y-9f8e7d6c", "$Ab12Cd34Ef56", "$ABCDEFGHIJKLMNOPQRSTUVWXYZ", "$$X"],
)
def test_a_key_that_starts_with_a_dollar_is_taken_as_a_key_without_a_warning(
    key: str, tmp_path: Path
) -> None:
    config = parse(_pictory(f"'{key}'"), tmp_path)
    assert config.warnings == ()


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(key=st.from_regex(r"\$[A-Za-z0-9_\-]{6,40}", fullmatch=True))
def test_an_unbraced_warning_never_quotes_what_is_not_a_variable_name(
    key: str, tmp_path: Path
) -> None:
    """Warned about only when the text is a conventional name; otherwise silent."""
    config = parse(_pictory(f"'{key}'"), tmp_path)
    name = key[1:]
    conventional = re.fullmatch(r"[A-Z_][A-Z0-9_]{0,63}", name) is not None and all(
        len(part) <= 16 for part in name.split("_")
    )
    assert bool(config.warnings) == conventional
    if not conventional:
        assert all(name not in w for w in config.warnings)


def test_the_unbraced_warning_stays_readable_in_the_log(tmp_path: Path) -> None:
    """The literal `$NAME` is a name, not a key: not scrubbed out of its own warning."""
    import io

    import structlog

    from exporter.log import configure, get_logger

    config = parse(_pictory("$PICTORY_API_KEY"), tmp_path, environ={"PICTORY_API_KEY": ENV_KEY})
    saved = structlog.get_config()
    stream = io.StringIO()
    try:
        configure("info", "json", stream)
        get_logger().warning("config warning", detail=config.warnings[0])
    finally:
        structlog.configure(**saved)
    assert "write ${PICTORY_API_KEY}" in stream.getvalue()


@pytest.mark.parametrize("value", ["", "   "], ids=["empty", "whitespace"])
@pytest.mark.parametrize(
    ("field", "text"),
    [("api_key", "${PICTORY_API_KEY}"), ("base_url", "https://${PICTORY_API_KEY}/")],
)
def test_a_set_but_empty_variable_is_named(
    value: str, field: str, text: str, tmp_path: Path
) -> None:
    yaml_text = _pictory("${PICTORY_API_KEY}" if field == "api_key" else KEY)
    if field == "base_url":
        yaml_text += f"    base_url: {text}\n"
    with pytest.raises(ConfigError) as info:
        parse(yaml_text, tmp_path, environ={"PICTORY_API_KEY": value})
    (problem,) = info.value.problems
    assert f"accounts[0].{field}: environment variable PICTORY_API_KEY is set but empty" in problem
    assert problem.endswith("give it a value, or unset it and fix the config")


@pytest.mark.parametrize(
    "text",
    [
        "accounts:\n\t- provider: pictory\n",
        "accounts:\n  - provider: pictory\n  \taccount: a\n",
        "global:\n  interval: 5m\n\ttimeout: 10s\naccounts: []\n",
        "global:\tx\n",
    ],
)
def test_a_tab_in_the_yaml_says_use_spaces(text: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, tmp_path)
    (problem,) = info.value.problems
    assert problem.endswith(
        "; use spaces, not tabs (YAML rejects a tab here; indentation must be spaces)"
    )


def test_a_syntax_error_without_a_tab_has_no_tab_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse("accounts: [\n", tmp_path)
    assert "tab" not in info.value.problems[0]


def test_key_files_can_be_left_unread_for_a_check(tmp_path: Path) -> None:
    text = (
        "accounts:\n"
        "  - {provider: pictory, account: a, api_key_file: /run/secrets/nowhere/pictory}\n"
        "  - {provider: vertaaux, account: b, api_key_file: keys/vertaaux}\n"
        f"  - {{provider: tornado, account: c, api_key: {KEY}}}\n"
    )
    with pytest.raises(ConfigError):
        parse(text, tmp_path)  # read: the files are missing
    config = parse_config(text, source=SOURCE, environ={}, base_dir=tmp_path, read_key_files=False)
    assert config.unread_key_files == 2
    assert [a.api_key_file for a in config.accounts] == [
        "/run/secrets/nowhere/pictory",
        str(tmp_path / "keys/vertaaux"),
        None,
    ]
    # Everything else is still checked.
    with pytest.raises(ConfigError) as info:
        parse_config(
            text.replace("account: b", "account: b, interval: 5"),
            source=SOURCE,
            environ={},
            base_dir=tmp_path,
            read_key_files=False,
        )
    assert "accounts[1].interval: not a duration" in info.value.problems[0]


# --- alerts: ---------------------------------------------------------------------------

INF = float("inf")


def alert_config(global_alerts: str = "", account_alerts: str = "") -> str:
    """A one-account config with `alerts:` blocks given as YAML flow mappings."""
    text = ""
    if global_alerts:
        text += f"global:\n  alerts: {global_alerts}\n"
    text += (
        "accounts:\n  - provider: vertaaux\n    account: prod\n    api_key: vx_live_0123456789\n"
    )
    if account_alerts:
        text += f"    alerts: {account_alerts}\n"
    return text


def test_alert_settings_are_read_per_layer() -> None:
    config = parse_config(
        alert_config(
            "{warning: 0.7, forecast_horizon: 30d}",
            "{critical: 0.9, forecast: false, meters: {credits: {warning: off, critical: .inf},"
            " seats: {forecast: true, forecast_horizon: 2w}}}",
        ),
        source="exporter.yml",
    )
    (account,) = config.accounts
    assert account.alerts == AlertPolicy(
        fleet=AlertSettings(warning=0.7, forecast_horizon=30 * 86400.0),
        account=AlertSettings(critical=0.9, forecast=False),
        meters=(
            ("credits", AlertSettings(warning=INF, critical=INF)),
            ("seats", AlertSettings(forecast=True, forecast_horizon=14 * 86400.0)),
        ),
    )
    # The adapter's defaults join in the policy the poller hands to the state.
    assert account.alert_policy.adapter == PROVIDERS["vertaaux"].alert_defaults
    assert config.warnings == ()


def test_no_alerts_block_sets_nothing() -> None:
    (account,) = parse_config(alert_config(), source="exporter.yml").accounts
    assert account.alerts == AlertPolicy()
    (empty,) = parse_config(alert_config("", "{}"), source="exporter.yml").accounts
    assert empty.alerts == AlertPolicy()


@pytest.mark.parametrize("text", ["off", "Off", "false", "no", '"off"', ".inf", ".Inf", "+.inf"])
def test_a_severity_is_switched_off_by_off_or_infinity(text: str) -> None:
    (account,) = parse_config(
        alert_config("", f"{{warning: {text}, critical: {text}}}"), source="exporter.yml"
    ).accounts
    assert account.alerts.account == AlertSettings(warning=INF, critical=INF)


def test_alert_settings_compare_by_value_across_loads() -> None:
    """An unchanged `alerts:` keeps the account equal (the poller keeps its state)."""
    text = alert_config("{warning: 0.7}", "{meters: {credits: {critical: 0.99}}}")
    first, second = (parse_config(text, source="exporter.yml").accounts[0] for _ in range(2))
    assert first == second
    changed = parse_config(
        alert_config("{warning: 0.75}", "{meters: {credits: {critical: 0.99}}}"),
        source="exporter.yml",
    ).accounts[0]
    assert changed != first


@pytest.mark.parametrize(
    ("global_alerts", "account_alerts", "expected"),
    [
        (
            "",
            "{warning: 0}",
            "exporter.yml:5:23: accounts[0].alerts.warning: 0 is not a used share above 0: 0 or"
            " less would fire for every meter with a limit, used or not; write a share such as"
            " 0.8, or off to switch the alert off",
        ),
        (
            "",
            "{critical: -0.5}",
            "exporter.yml:5:24: accounts[0].alerts.critical: -0.5 is not a used share above 0:"
            " 0 or less would fire for every meter with a limit, used or not; write a share"
            " such as 0.8, or off to switch the alert off",
        ),
        (
            "",
            "{warning: .nan}",
            "exporter.yml:5:23: accounts[0].alerts.warning: nan is not a used share above 0: 0"
            " or less would fire for every meter with a limit, used or not; write a share such"
            " as 0.8, or off to switch the alert off",
        ),
        (
            "",
            '{warning: "80%"}',
            "exporter.yml:5:23: accounts[0].alerts.warning: expected a used share of the limit"
            " such as 0.8 (for 80 %), or off, got a string",
        ),
        (
            "",
            "{warning: true}",
            "exporter.yml:5:23: accounts[0].alerts.warning: expected a used share of the limit"
            " such as 0.8 (for 80 %), or off, got a boolean",
        ),
        (
            "",
            "{warning: 0.9, critical: 0.8}",
            "exporter.yml:5:23: accounts[0].alerts.warning: the warning threshold 0.9 is above"
            " the critical one 0.8: the critical alert would fire first; make warning <="
            " critical",
        ),
        (
            # Inherited pair: reported where the account writes its half.
            "{warning: 0.9}",
            "{critical: 0.85}",
            "exporter.yml:7:24: accounts[0].alerts.critical: the warning threshold 0.9 is above"
            " the critical one 0.85: the critical alert would fire first; make warning <="
            " critical",
        ),
        (
            "",
            "{critical: 0.9, meters: {credits: {warning: 0.95}}}",
            "exporter.yml:5:57: accounts[0].alerts.meters.credits.warning: the warning"
            " threshold 0.95 is above the critical one 0.9: the critical alert would fire"
            " first; make warning <= critical",
        ),
        (
            "{warning: 0.99, critical: 0.9}",
            "",
            "exporter.yml:2:21: global.alerts.warning: the warning threshold 0.99 is above the"
            " critical one 0.9: the critical alert would fire first; make warning <= critical",
        ),
        (
            "",
            "{forecast_horizon: 0}",
            "exporter.yml:5:32: accounts[0].alerts.forecast_horizon: a horizon of 0 would never"
            " forecast; write forecast: false to switch the forecast alerts off",
        ),
        (
            "",
            "{forecast_horizon: 7}",
            "exporter.yml:5:32: accounts[0].alerts.forecast_horizon: not a duration: '7' (add"
            " a unit, e.g. 300s or 5m)",
        ),
        (
            "",
            "{forecast: false, forecast_horizon: 7d}",
            "exporter.yml:5:49: accounts[0].alerts.forecast_horizon: has no effect with"
            " forecast: false in the same block; remove one of them",
        ),
        (
            "",
            "{forecast: sometimes}",
            "exporter.yml:5:24: accounts[0].alerts.forecast: expected true or false, got a string",
        ),
        (
            "{meters: {credits: {warning: 0.5}}}",
            "",
            "exporter.yml:2:12: global.alerts.meters: per-meter settings belong under an"
            " account's alerts (meter names are the vendor's); set warning, critical, forecast"
            " or forecast_horizon here",
        ),
        (
            "",
            "{meters: {credits: {warn: 0.5}}}",
            "exporter.yml:5:33: accounts[0].alerts.meters.credits.warn: unknown key 'warn';"
            " allowed keys: warning, critical, forecast, forecast_horizon",
        ),
        (
            "",
            "{meters: [credits]}",
            "exporter.yml:5:22: accounts[0].alerts.meters: expected a mapping of meter names,"
            " got a list",
        ),
        (
            "",
            "{threshold: 0.5}",
            "exporter.yml:5:14: accounts[0].alerts.threshold: unknown key 'threshold'; allowed"
            " keys: warning, critical, forecast, forecast_horizon, meters",
        ),
        (
            "",
            "[0.8, 0.95]",
            "exporter.yml:5:13: accounts[0].alerts: expected a mapping, got a list",
        ),
    ],
    ids=[
        "zero share",
        "negative share",
        "nan share",
        "percent string",
        "true is not a share",
        "warning above critical",
        "warning above critical, inherited",
        "meter warning above account critical",
        "global warning above critical",
        "zero horizon",
        "horizon without unit",
        "horizon with forecast off",
        "forecast not a boolean",
        "meters under global",
        "unknown meter key",
        "meters not a mapping",
        "unknown alerts key",
        "alerts not a mapping",
    ],
)
def test_bad_alert_settings(global_alerts: str, account_alerts: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(alert_config(global_alerts, account_alerts), source="exporter.yml")
    assert list(info.value.problems) == [expected]


@pytest.mark.parametrize(
    ("setting", "effect"),
    [
        ("warning: 80", ""),
        ("critical: 1.2", "; it also switches SaasQuotaExhausted off for the meter"),
    ],
)
def test_an_alert_share_above_one_is_accepted_with_a_warning(setting: str, effect: str) -> None:
    config = parse_config(alert_config("", f"{{{setting}}}"), source="exporter.yml")
    value = setting.split(": ")[1]
    assert config.warnings == (
        f"exporter.yml:5:{14 + len(setting) - len(value)}: accounts[0].alerts."
        f"{setting.split(':')[0]}: {value} is above 1 (100 % used): the alert fires only on"
        f" overage{effect}; a share of 80 % is written 0.8, and off switches the alert off;"
        " accepted",
    )


_SHARES = st.one_of(
    st.none(), st.sampled_from([INF]), st.floats(0.01, 1.0).map(lambda x: round(x, 2))
)


def _flow(settings: dict[str, float | None]) -> str:
    parts = [f"{k}: {'off' if v == INF else v}" for k, v in settings.items() if v is not None]
    return "{" + ", ".join(parts) + "}" if parts else ""


@settings(max_examples=examples(60), deadline=None)
@given(gw=_SHARES, gc=_SHARES, aw=_SHARES, ac=_SHARES)
def test_threshold_order_is_checked_as_the_layers_combine(
    gw: float | None, gc: float | None, aw: float | None, ac: float | None
) -> None:
    """An error exactly when the effective warning and critical are numbers, warning >
    critical; once, in the most specific block that writes one of them."""
    text = alert_config(
        _flow({"warning": gw, "critical": gc}), _flow({"warning": aw, "critical": ac})
    )
    global_bad = gw is not None and gc is not None and gw < INF and gc < INF and gw > gc
    warning = aw if aw is not None else gw
    critical = ac if ac is not None else gc
    account_bad = (
        (aw is not None or ac is not None)
        and warning is not None
        and critical is not None
        and max(warning, critical) < INF
        and warning > critical
    )
    try:
        parse_config(text, source="exporter.yml")
    except ConfigError as exc:
        where = [p.split(": ")[1] for p in exc.problems]
        assert where == [w for w, bad in (("global.alerts.warning", global_bad),) if bad] + (
            [f"accounts[0].alerts.{'warning' if aw is not None else 'critical'}"]
            if account_bad
            else []
        )
    else:
        assert not global_bad
        assert not account_bad


# --- user-defined providers (`providers:` and `provider_files:`) ------------------------

ACME = """\
base_url: https://api.acme.example
path: /v1/usage
auth: {header: X-Api-Key}
meters:
  - id: credits
    unit: credits
    used: used
    limit: limit
"""


def indent(text: str, by: int) -> str:
    return textwrap.indent(text, " " * by)


def acme_config(definition: str = ACME, *, name: str = "acme", accounts: str = "") -> str:
    return (
        f"providers:\n  {name}:\n{indent(definition, 4)}"
        f"accounts:\n  - {{provider: {name}, account: main, api_key: {KEY}}}\n{accounts}"
    )


def test_a_provider_defined_in_the_config_joins_the_registry_for_that_load() -> None:
    config = parse_config(acme_config(), source=SOURCE, environ={})
    (acme,) = config.accounts
    assert acme.adapter.name == "acme"
    assert acme.url == "https://api.acme.example/v1/usage"
    assert acme.request().headers == {"X-Api-Key": KEY}
    readings = acme.adapter.parse(200, {}, b'{"used": 3, "limit": 10}')
    assert [(m.meter, m.used, m.limit) for m in readings.meters] == [("credits", 3, 10)]
    # For that load only: the registry it was handed is unchanged.
    assert "acme" not in PROVIDERS
    with pytest.raises(ConfigError, match="unknown provider 'acme'"):
        parse_config(f"accounts:\n  - {{provider: acme, account: a, api_key: {KEY}}}\n", environ={})


def test_provider_files_are_globs_relative_to_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    (folder / "providers").mkdir(parents=True)
    (folder / "providers" / "acme.yaml").write_text(ACME)
    (folder / "providers" / "zeta.yml").write_text(ACME.replace("acme", "zeta"))
    (folder / "providers" / "notes.txt").write_text("not matched by the glob")
    path = folder / "exporter.yml"
    path.write_text(
        "provider_files: ['providers/*.yaml', 'providers/*.yml', providers/acme.yaml]\n"
        "accounts:\n"
        f"  - {{provider: acme, account: a, api_key: {KEY}}}\n"
        f"  - {{provider: zeta, account: z, api_key: {KEY2}}}\n"
    )
    monkeypatch.chdir(tmp_path)  # not the config's folder
    config = load_config(path, environ={})
    assert [(a.provider, a.url) for a in config.accounts] == [
        ("acme", "https://api.acme.example/v1/usage"),
        ("zeta", "https://api.zeta.example/v1/usage"),
    ]
    # acme.yaml named by two patterns is read once, not "defined twice".
    assert config.warnings == ()


def test_every_problem_of_every_definition_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "defs").mkdir()
    broken_file = tmp_path / "defs" / "beta.yaml"
    broken_file.write_text(
        "base_url: https://api.beta.example\n"
        "auth: {header: X-Api-Key}\n"
        "colour: blue\n"
        "meters:\n"
        "  - {id: Credits, unit: credits, used: used}\n"
    )
    path = tmp_path / "exporter.yml"
    path.write_text(
        "provider_files: [defs/*.yaml]\n"
        "providers:\n"
        "  acme:\n"
        "    base_url: https://api.acme.example\n"
        "    auth: {header: X-Api-Key}\n"
        "    meters:\n"
        "      - {id: credits, unit: credits, used: 'used[?'}\n"
        "accounts:\n"
        f"  - {{provider: acme, account: a, api_key: {KEY}}}\n"
        f"  - {{provider: beta, account: b, api_key: {KEY}, interval: 5}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.problems == (
        # The file's own problems with the file's own positions, where the config names it.
        f"{broken_file}:3:1: colour: unknown key 'colour'; allowed keys: base_url, path,"
        " method, query, headers, auth, interval, min_interval, errors, info, key_expiry,"
        " key_active, rate_limits, rate_limit_headers, meters, max_meters, docs_url",
        f"{broken_file}:5:10: meters[0].id: a meter id is snake_case, e.g. api_credits",
        f"{path}:7:51: providers.acme.meters[0].used: bad JMESPath expression 'used[?':"
        " Invalid jmespath expression",
        # The accounts of broken definitions are not also "unknown provider"; their own
        # problems still count.
        f"{path}:10:81: accounts[1].interval: not a duration: '5' (add a unit, e.g. 300s or 5m)",
    )


@pytest.mark.parametrize(
    ("name", "origin"),
    [
        ("pictory", "the built-in adapter exporter/providers/pictory.py"),
        ("github", "the shipped definition exporter/providers/github.yaml"),
    ],
)
def test_a_name_already_taken_is_an_error_naming_both_places(
    tmp_path: Path, name: str, origin: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(acme_config(name=name), source=SOURCE, environ={}, base_dir=tmp_path)
    assert info.value.problems == (
        f"{SOURCE}:2:3: providers.{name}: provider name {name!r} (providers.{name}) is already"
        f" taken by {origin}; choose another name",
    )
    (tmp_path / f"{name}.yaml").write_text(ACME)
    with pytest.raises(ConfigError) as info:
        parse_config(
            "provider_files: ['*.yaml']\naccounts: []\n",
            source=SOURCE,
            environ={},
            base_dir=tmp_path,
        )
    assert info.value.problems == (
        f"{SOURCE}:1:18: provider_files[0]: provider name {name!r} ({tmp_path / name}.yaml)"
        f" is already taken by {origin}; choose another name",
    )


def test_a_name_defined_in_the_map_and_in_a_file_is_an_error_naming_both(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text(ACME)
    text = "provider_files: [acme.yaml]\n" + acme_config()
    with pytest.raises(ConfigError) as info:
        parse_config(text, source=SOURCE, environ={}, base_dir=tmp_path)
    assert info.value.problems == (
        f"{SOURCE}:1:18: provider_files[0]: provider 'acme' ({tmp_path / 'acme.yaml'}) is"
        f" defined twice: also at {SOURCE}:3:3 (providers.acme); rename one",
    )
    # Twice in the map is a duplicate key like any other.
    twice = acme_config().replace("accounts:", f"  acme:\n{indent(ACME, 4)}accounts:")
    with pytest.raises(ConfigError) as info:
        parse_config(twice, source=SOURCE, environ={}, base_dir=tmp_path)
    assert info.value.problems == (f"{SOURCE}:11:3: providers.acme: duplicate key",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            acme_config(name="Acme"),
            f"{SOURCE}:3:5: providers.Acme: invalid provider name 'Acme': use [a-z][a-z0-9_]*",
        ),
        (
            "providers: [acme]\naccounts: []\n",
            f"{SOURCE}:1:12: providers: expected a mapping of provider name to definition,"
            " got a list",
        ),
        (
            "provider_files: defs/*.yaml\naccounts: []\n",
            f"{SOURCE}:1:17: provider_files: expected a list of file patterns, got a string",
        ),
    ],
    ids=["bad-name", "providers-not-a-map", "files-not-a-list"],
)
def test_bad_provider_blocks(text: str, expected: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source=SOURCE, environ={}, base_dir=tmp_path)
    assert info.value.problems[0] == expected


def test_provider_files_are_read_bounded_and_the_glob_is_capped(tmp_path: Path) -> None:
    def problems(patterns: str) -> tuple[str, ...]:
        with pytest.raises(ConfigError) as info:
            parse_config(
                f"provider_files: {patterns}\naccounts: []\n",
                source=SOURCE,
                environ={},
                base_dir=tmp_path,
            )
        return info.value.problems

    os.mkfifo(tmp_path / "fifo.yaml")
    with (tmp_path / "huge.yaml").open("wb") as f:
        f.truncate(2 * 1024 * 1024)
    assert problems("[fifo.yaml, huge.yaml, missing.yaml, notes.txt]") == (
        f"{SOURCE}:1:18: provider_files[0]: cannot read provider file {tmp_path / 'fifo.yaml'}:"
        " is a FIFO (named pipe), not a regular file",
        f"{SOURCE}:1:29: provider_files[1]: cannot read provider file {tmp_path / 'huge.yaml'}:"
        " is 2097152 bytes; the limit is 1 MiB",
        f"{SOURCE}:1:40: provider_files[2]: cannot read provider file"
        f" {tmp_path / 'missing.yaml'}: No such file or directory",
        f"{SOURCE}:1:54: provider_files[3]: {tmp_path / 'notes.txt'}: a provider file is"
        " NAME.yaml or NAME.yml (the name is the provider's)",
    )
    many = tmp_path / "many"
    many.mkdir()
    for index in range(101):
        (many / f"p{index}.yaml").write_text(ACME)
    assert problems("['many/*.yaml']") == (
        f"{SOURCE}:1:18: provider_files[0]: 'many/*.yaml' matches more than the 100 provider"
        " files a config may read (all patterns together); narrow the pattern",
    )
    (many / "p100.yaml").unlink()
    config = parse_config(
        "provider_files: ['many/*.yaml', 'nothing/*.yaml']\naccounts: []\n",
        source=SOURCE,
        environ={},
        base_dir=tmp_path,
    )
    assert config.warnings == (
        f"{SOURCE}:1:33: provider_files[1]: 'nothing/*.yaml' matches no file in {tmp_path}",
        f"{SOURCE}:2:11: accounts: no accounts configured; nothing to poll",
    )


def test_equal_definitions_give_equal_accounts_and_a_changed_one_does_not(
    tmp_path: Path,
) -> None:
    first = parse_config(acme_config(), environ={})
    # Moved and commented, but the same definition: the same account.
    moved = "# the acme vendor\n\n" + acme_config()
    assert parse_config(moved, environ={}).accounts == first.accounts
    (tmp_path / "acme.yaml").write_text(ACME)
    from_file = parse_config(
        f"provider_files: [acme.yaml]\naccounts:\n  - {{provider: acme, account: main,"
        f" api_key: {KEY}}}\n",
        environ={},
        base_dir=tmp_path,
    )
    assert from_file.accounts == first.accounts
    changed = parse_config(acme_config(ACME.replace("limit: limit", "limit: cap")), environ={})
    assert changed.accounts != first.accounts


def test_config_check_prints_definition_problems_with_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from exporter.cli import main

    path = tmp_path / "exporter.yml"
    path.write_text(
        acme_config(ACME.replace("used: used", "used: 'used[?'"))
        + "  - {provider: pictroy, account: b, api_key: x_1234567}\n"
    )
    assert main(["--config.file", str(path), "--config.check"]) != 0
    err = capsys.readouterr().err
    assert f"{path}: 2 config errors:" in err
    assert f"{path}:9:22: providers.acme.meters[0].used: bad JMESPath expression" in err
    assert f"{path}:13:16: accounts[1].provider: unknown provider 'pictroy'" in err
    path.write_text(acme_config())
    assert main(["--config.file", str(path), "--config.check"]) == 0


@pytest.mark.parametrize(
    ("doc", "heading"),
    [
        ("docs/configuration.md", "## User-defined providers"),
        ("docs/writing-a-provider.md", "## Using your own definition"),
    ],
)
def test_the_documented_user_defined_provider_examples_load(
    doc: str, heading: str, tmp_path: Path
) -> None:
    text = (Path(__file__).parents[2] / doc).read_text()
    block = re.search(re.escape(heading) + r"\n.*?```yaml\n(.*?)```", text, re.DOTALL)
    assert block, f"no yaml example under {heading!r} in {doc}"
    (tmp_path / "providers").mkdir()
    (tmp_path / "providers" / "acme.yaml").write_text(ACME)
    environ = {"QUOTACO_API_KEY": "quotaco-key-0123", "DEEPL_TEAM_KEY": "deepl-key-0123"}
    config = parse_config(block.group(1), environ=environ, base_dir=tmp_path)
    assert config.accounts
    assert config.warnings == ()


def test_a_config_file_of_10000_accounts_loads(tmp_path: Path) -> None:
    """One exporter holds 10,000 accounts: their config file (about 1.4 MB) is within
    the file size limit, which stops only mistakes (it was 1 MiB)."""
    lines = ["accounts:"] + [
        f"  - {{provider: pictory, account: customer-{i:05d},"
        f" api_key: pk_live_{i:05d}_0123456789abcdef, base_url: 'http://127.0.0.1:9/v'}}"
        for i in range(10_000)
    ]
    text = "\n".join(lines) + "\n"
    assert len(text) > 1024 * 1024
    path = tmp_path / "exporter.yml"
    path.write_text(text)
    assert len(load_config(path, environ={}).accounts) == 10_000
