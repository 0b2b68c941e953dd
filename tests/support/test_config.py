"""The one config builder for accounts pointing at the simulator: what it writes is a
config the real loader reads back field for field."""

from __future__ import annotations

from pathlib import Path

from exporter.config import parse_config
from exporter.demo.run import demo_accounts, demo_config_text
from exporter.demo.simulator import VendorSimulator
from exporter.durations import parse_duration
from tests.support.config import (
    Account,
    account_at,
    config_text,
    last_part,
    simulator_config,
    write_config,
)


def test_every_simulated_key_becomes_an_account_at_the_simulator() -> None:
    with VendorSimulator(demo_accounts()) as sim:
        overrides = {"demo-tornado-pipeline": {"interval": "2m", "max_staleness": "9m"}}
        text = simulator_config(
            sim, name=last_part, overrides=overrides, interval="15s", timeout="5s"
        )
        config = parse_config(text)
        # The same accounts, URLs and keys as the demo's own config.
        demo = parse_config(demo_config_text(sim))
    assert [(a.key, a.base_url, a.api_key.reveal()) for a in config.accounts] == [
        (a.key, a.base_url, a.api_key.reveal()) for a in demo.accounts
    ]
    by_key = {a.api_key.reveal(): a for a in config.accounts}
    assert by_key["demo-tornado-pipeline"].interval == 120.0
    assert by_key["demo-tornado-pipeline"].max_staleness == 540.0
    assert by_key["demo-piloterr-scraping"].interval == parse_duration("15s")


def test_keys_and_key_files_are_taken_as_they_are(tmp_path: Path) -> None:
    odd = "k: #1 'x' \"y\" {z} \\ end"
    key_file = tmp_path / "a key: file"
    key_file.write_text("sk_from_file_0001\n")
    with VendorSimulator([]) as sim:
        path = write_config(
            tmp_path / "config.yml",
            [
                account_at(sim, "tornado", "odd", odd, timeout="2s"),
                account_at(sim, "tornado", "file", api_key_file=key_file),
                Account("vertaaux", "elsewhere", "http://127.0.0.1:9", "vx_live_elsewhere"),
            ],
            interval="1m",
            timeout="3s",
        )
        config = parse_config(path.read_text(), source=str(path))
        url = sim.base_url("tornado")
    odd_account, file_account, elsewhere = config.accounts
    assert (odd_account.api_key.reveal(), odd_account.timeout) == (odd, 2.0)
    assert odd_account.base_url == url
    assert file_account.api_key_file == str(key_file)
    assert file_account.api_key.reveal() == "sk_from_file_0001"
    assert elsewhere.base_url == "http://127.0.0.1:9"
    assert (config.interval, config.timeout) == (60.0, 3.0)


def test_no_accounts_and_no_global_section() -> None:
    assert config_text([]) == "accounts: []\n"
    assert parse_config(config_text([], interval="1m")).accounts == ()
