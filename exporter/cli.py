"""The `saas-quota-exporter` command (docs/configuration.md, Command line).

saas-quota-exporter --config.file PATH [--web.listen-address HOST:PORT]
    [--web.config.file PATH] [--log.level LEVEL] [--log.format json|console]
    [--shard.count N (--shard.index I | --shard.index-from-hostname)]
saas-quota-exporter --config.file PATH --config.check
saas-quota-exporter demo [--web.listen-address HOST:PORT]
saas-quota-exporter probe --config.file PATH --account PROVIDER/ACCOUNT
    [--body FILE [--status N] [--headers FILE]]
"""

from __future__ import annotations

# Only light imports up here: main() installs the signal handlers first, and the
# heavy modules (httpx, yaml, prometheus_client, ...) load after that, inside it.
import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from exporter import __version__
from exporter.signals import EARLY

if TYPE_CHECKING:
    from exporter.app import ListenAddress
    from exporter.config import ConfigError
    from exporter.sharding import Shard
    from exporter.webconfig import WebConfigError

# The choices of --log.level and --log.format (exporter.log.LEVELS and FORMATS, kept
# here so building the parser needs no import of structlog; a test checks they match).
LEVELS: Final = ("debug", "info", "warning", "error")
FORMATS: Final = ("json", "console")

# Listed as saas-quota-exporter's port on Prometheus' default-port wiki is the plan;
# until then it is one no common exporter uses.
DEFAULT_LISTEN: Final = ":9877"
# The demo has no auth and simulated data: loopback only unless asked otherwise.
DEMO_LISTEN: Final = "127.0.0.1:9877"
EXIT_CONFIG: Final = 1
EXIT_USAGE: Final = 2


def build_parser(demo: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saas-quota-exporter demo" if demo else "saas-quota-exporter",
        description=(
            "Run against built-in simulated vendors on loopback; no keys needed."
            if demo
            else "Prometheus exporter for the quotas of paid SaaS APIs."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        # Go-style flags: no silent prefixes that a future flag could break.
        allow_abbrev=False,
    )
    if not demo:
        parser.add_argument(
            "--config.file", dest="config_file", metavar="PATH", help="YAML config file"
        )
        parser.add_argument(
            "--config.check",
            dest="config_check",
            action="store_true",
            help="validate the config file and exit (0 when valid)",
        )
        parser.add_argument(
            "--web.config.file",
            dest="web_config_file",
            metavar="PATH",
            help="exporter-toolkit web config (TLS, basic auth)",
        )
        shards = parser.add_argument_group(
            "sharding", "split the config's accounts across replicas (docs/deployment.md)"
        )
        shards.add_argument(
            "--shard.count",
            dest="shard_count",
            type=int,
            default=1,
            metavar="N",
            help="number of replicas sharing the accounts; each polls and serves 1/N",
        )
        which = shards.add_mutually_exclusive_group()
        which.add_argument(
            "--shard.index",
            dest="shard_index",
            type=int,
            default=None,
            metavar="I",
            help="this replica's shard, 0 to N-1",
        )
        which.add_argument(
            "--shard.index-from-hostname",
            dest="shard_from_hostname",
            action="store_true",
            help="take the shard from the trailing ordinal of $HOSTNAME (StatefulSet pod-2 -> 2)",
        )
    parser.add_argument(
        "--web.listen-address",
        dest="listen",
        default=DEMO_LISTEN if demo else DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="address to serve /metrics on",
    )
    parser.add_argument("--log.level", dest="log_level", choices=LEVELS, default="info")
    parser.add_argument("--log.format", dest="log_format", choices=FORMATS, default="console")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def build_probe_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saas-quota-exporter probe",
        description=(
            "Poll one account once and print the HTTP status, every reading, every problem"
            " and why a meter is absent (never the key); exit 0 when the poll succeeded."
            " --body parses a recorded answer offline instead."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("--config.file", dest="config_file", metavar="PATH")
    parser.add_argument("--account", required=True, metavar="PROVIDER/ACCOUNT")
    parser.add_argument("--body", metavar="FILE", help="a recorded response body (offline)")
    parser.add_argument("--status", type=int, default=200, help="its HTTP status")
    parser.add_argument("--headers", metavar="FILE", help="its headers, as a JSON object")
    parser.add_argument("--log.level", dest="log_level", choices=LEVELS, default="warning")
    parser.add_argument("--log.format", dest="log_format", choices=FORMATS, default="console")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # First of all: a SIGHUP or SIGTERM during start-up is recorded, not fatal, and
    # acted on once the exporter runs (exporter.signals).
    EARLY.install()
    try:
        return _main(argv)
    finally:
        EARLY.restore()


def _main(argv: Sequence[str] | None) -> int:
    import asyncio

    from exporter.app import Exporter
    from exporter.config import ConfigError, load_config
    from exporter.log import configure, get_logger
    from exporter.webconfig import WebConfigError, load_web_config

    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["probe"]:
        from exporter.probe import run_probe

        probe_args = build_probe_parser().parse_args(args_list[1:])
        configure(probe_args.log_level, probe_args.log_format)
        return run_probe(
            probe_args.config_file,
            probe_args.account,
            probe_args.body,
            probe_args.status,
            probe_args.headers,
        )
    if args_list[:1] == ["demo"]:
        from exporter.demo.run import run_demo

        args = build_parser(demo=True).parse_args(args_list[1:])
        configure(args.log_level, args.log_format)
        listen = _listen(args.listen)
        return run_demo(listen)

    parser = build_parser()
    args = parser.parse_args(args_list)
    configure(args.log_level, args.log_format)
    if not args.config_file:
        parser.error("--config.file is required (or run 'saas-quota-exporter demo')")
    # A usage error, reported as one before the config is even read.
    listen = _listen(args.listen)
    shard = _shard(args, parser)

    if args.config_check:
        return _check(args.config_file, args.web_config_file)

    log = get_logger()
    EARLY.config_read()
    try:
        config = load_config(args.config_file)
    except ConfigError as exc:
        _print_problems(args.config_file, exc)
        return EXIT_CONFIG

    security = None
    web_config_file = args.web_config_file
    if web_config_file:
        try:
            security = load_web_config(web_config_file)
        except WebConfigError as exc:
            _print_web_problems(web_config_file, exc)
            return EXIT_CONFIG

    exporter = Exporter(
        lambda: load_config(args.config_file),
        listen,
        security=security,
        load_security=(lambda: load_web_config(web_config_file)) if web_config_file else None,
        shard=shard,
    )
    try:
        asyncio.run(exporter.run(config))
    except OSError as exc:
        log.error("cannot serve", address=args.listen, error=str(exc))
        return EXIT_CONFIG
    return 0


def _listen(text: str) -> ListenAddress:
    from exporter.app import ListenAddress

    try:
        return ListenAddress.parse(text)
    except ValueError as exc:
        print(f"saas-quota-exporter: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def _shard(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Shard:
    """The shard flags as a `Shard`; a usage error (exit 2) when they do not fit."""
    import os
    import socket

    from exporter.sharding import Shard, ordinal

    index = args.shard_index
    try:
        if args.shard_from_hostname:
            # $HOSTNAME is the pod name in Kubernetes; the kernel's name otherwise.
            index = ordinal(os.environ.get("HOSTNAME") or socket.gethostname())
        if index is None:
            if args.shard_count > 1:
                parser.error(
                    f"--shard.count {args.shard_count} needs --shard.index or"
                    " --shard.index-from-hostname"
                )
            index = 0
        return Shard(index=index, count=args.shard_count)
    except ValueError as exc:
        parser.error(str(exc))


def _check(path: str, web_config_file: str | None) -> int:
    from exporter.config import ConfigError, load_config
    from exporter.webconfig import WebConfigError, load_web_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        _print_problems(path, exc)
        return EXIT_CONFIG
    if web_config_file:
        try:
            load_web_config(web_config_file)
        except WebConfigError as exc:
            _print_web_problems(web_config_file, exc)
            return EXIT_CONFIG
        print(f"{web_config_file}: OK")
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{path}: OK ({len(config.accounts)} accounts)")
    return 0


def _print_web_problems(path: str, exc: WebConfigError) -> None:
    # One a line, each with its file:line:col, like the config's.
    print(f"invalid web config {path}:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def _print_problems(path: str, exc: ConfigError) -> None:
    count = len(exc.problems)
    print(f"{path}: {count} config error{'s' if count != 1 else ''}:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
