"""`saas-quota-exporter demo`: the real exporter against simulated vendors.

Starts the vendor simulator on a free loopback port, writes the config a user would
write (one account per simulated key, `base_url` pointing at the simulator), and
runs the ordinary exporter on it. Nothing here is a shortcut around the real code:
the demo polls over HTTP, parses with the real adapters and serves real /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from exporter.app import Exporter, ListenAddress
from exporter.config import Config, parse_config
from exporter.demo.simulator import VendorSimulator
from exporter.demo.vendors import SIMULATED
from exporter.demo.vendors.base import SimAccount, SimulatedVendor

# Short enough that the numbers move while you watch; the simulator has no rate limit.
DEMO_INTERVAL: Final = "15s"


def demo_accounts(vendors: Mapping[str, SimulatedVendor] = SIMULATED) -> list[SimAccount]:
    """The demo's accounts: usage that moves within minutes, some meters near their caps.

    Each simulated vendor brings its own (exporter/demo/vendors/); a vendor without
    a simulation has none. Rates are chosen so a demo left running for ten minutes
    has something for each dashboard and quota alert: Piloterr runs out, Pictory's
    video minutes approach their cap, the rest burn slowly. The VertaaUX free
    account is exhausted from the start on purpose: its 3 audits a day run out daily
    by design, and the bundled alerts leave the free tier alone (see
    deploy/prometheus/saas-quota.alerts.yml).
    """
    return [account for vendor in vendors.values() for account in vendor.demo_accounts]


def demo_config_text(sim: VendorSimulator) -> str:
    lines = [
        "global:",
        f"  interval: {DEMO_INTERVAL}",
        "  timeout: 5s",
        "accounts:",
    ]
    for account in sim.accounts.values():
        name = account.api_key.split("-", 2)[2]
        lines += [
            f"  - provider: {account.provider}",
            f"    account: {name}",
            f"    api_key: {account.api_key}",
            f"    base_url: {sim.base_url(account.provider)}",
        ]
    return "\n".join(lines) + "\n"


def load_demo_config(sim: VendorSimulator) -> Config:
    config = parse_config(demo_config_text(sim), source="<demo>")
    # The warnings are about real vendors' rate limits, which the simulator lacks.
    return dataclasses.replace(config, warnings=())


def run_demo(listen: ListenAddress) -> int:
    with VendorSimulator(demo_accounts()) as sim, contextlib.ExitStack() as files:
        config = load_demo_config(sim)
        # Shown by path, not printed: the log stays free of keys, even demo ones. A
        # read-only container may have no writable temporary directory: say so.
        try:
            tmp = files.enter_context(tempfile.TemporaryDirectory(prefix="saas-quota-demo-"))
            config_file = Path(tmp, "config.yml")
            config_file.write_text(demo_config_text(sim), encoding="utf-8")
            shown = (
                f"{config_file} (the config it runs, as you would write one;"
                " its keys are the simulator's)"
            )
        except OSError as exc:
            shown = f"not written ({exc.strerror or exc}: no writable temporary directory)"
        exporter = Exporter(lambda: load_demo_config(sim), listen)

        async def main() -> None:
            task = asyncio.create_task(exporter.run(config))
            started = asyncio.create_task(exporter.started.wait())
            await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
            if exporter.started.is_set():
                url = listen.url(exporter.port)
                print(
                    "saas-quota-exporter demo: simulated vendors at "
                    f"http://127.0.0.1:{sim.port}/<provider>/...\n"
                    f"  metrics:      {url}/metrics\n"
                    f"  status page:  {url}/\n"
                    f"  health:       {url}/-/healthy  {url}/-/ready\n"
                    f"  config:       {shown}\n"
                    "Press Ctrl-C to stop.",
                    file=sys.stderr,
                    flush=True,
                )
            await task

        try:
            asyncio.run(main())
        except OSError as exc:
            print(
                f"saas-quota-exporter demo: {exc}",  # ListenError: address and what to do
                file=sys.stderr,
            )
            return 1
    return 0
