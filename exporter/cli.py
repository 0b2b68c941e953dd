"""The `saas-quota-exporter` command (docs/configuration.md, Command line).

saas-quota-exporter --config.file PATH [--web.listen-address HOST:PORT]
    [--web.config.file PATH] [--log.level LEVEL] [--log.format json|logfmt|console]
    [--shard.count N (--shard.index I | --shard.index-from-hostname)]
saas-quota-exporter --config.file PATH --config.check [--config.skip-key-files]
saas-quota-exporter [--log.level LEVEL] demo [--web.listen-address HOST:PORT]
saas-quota-exporter probe --config.file PATH --account PROVIDER/ACCOUNT
    [--body FILE [--status N] [--headers FILE]]
"""

from __future__ import annotations

# Only light imports up here: main() installs the signal handlers first, and the
# heavy modules (httpx, yaml, prometheus_client, ...) load after that, inside it.
import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from exporter import version_text
from exporter.signals import EARLY

if TYPE_CHECKING:
    from exporter.app import ListenAddress
    from exporter.config import ConfigError
    from exporter.sharding import Shard
    from exporter.webconfig import WebConfigError

# The choices of --log.level and --log.format (exporter.log.LEVELS and FORMATS, kept
# here so building the parser needs no import of structlog; a test checks they match).
LEVELS: Final = ("debug", "info", "warn", "warning", "error")
FORMATS: Final = ("json", "logfmt", "console")

# The subcommands, each with its one-line help (listed by --help); `main` runs the
# one named by the first argument that is not a flag or a flag's value, so the
# global flags (--log.level, --log.format) may come before or after its name.
COMMANDS: Final = {
    "demo": "run against built-in simulated vendors on loopback; no keys needed",
    "probe": "poll one account once and print what the vendor answered and what was read",
}

# Listed as saas-quota-exporter's port on Prometheus' default-port wiki is the plan;
# until then it is one no common exporter uses.
DEFAULT_LISTEN: Final = ":9877"
# The demo has no auth and simulated data: loopback only unless asked otherwise.
DEMO_LISTEN: Final = "127.0.0.1:9877"
EXIT_CONFIG: Final = 1
EXIT_USAGE: Final = 2


class _VersionAction(argparse.Action):
    """--version, computed only when asked (it may run `git describe`)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="show the version and build, then exit",
        )

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(version_text())
        parser.exit()


def _commands_epilog() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name.ljust(width)}  {text}" for name, text in COMMANDS.items()]
    return "commands (saas-quota-exporter COMMAND --help for their flags):\n" + "\n".join(lines)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Defaults shown where there is one to show, the epilog's command list as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if (
            text
            and action.option_strings
            and action.default not in (None, False, argparse.SUPPRESS)
        ):
            text += " (default: %(default)s)"
        return text


def add_log_flags(parser: argparse.ArgumentParser) -> None:
    """--log.level and --log.format, the flags every command shares."""
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=LEVELS,
        default="info",
        help="log only messages of this severity or above (warn is warning, as in Go exporters)",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=FORMATS,
        default="console",
        help="json: one object a line, for log collectors; logfmt: key=value; console: for people",
    )


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The main parser, or with `command` the parser of that subcommand."""
    demo = command == "demo"
    parser = argparse.ArgumentParser(
        prog=f"saas-quota-exporter {command}" if command else "saas-quota-exporter",
        description=(
            COMMANDS[command][0].upper() + COMMANDS[command][1:] + "."
            if command
            else "Prometheus exporter for the quotas of paid SaaS APIs."
        ),
        epilog=None if command else _commands_epilog(),
        formatter_class=_HelpFormatter,
        # Go-style flags: no silent prefixes that a future flag could break.
        allow_abbrev=False,
    )
    if not command:
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
            "--config.skip-key-files",
            dest="skip_key_files",
            action="store_true",
            help="with --config.check: check everything but the api_key_file contents, for a"
            " config whose key files exist only where the service runs",
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
    add_log_flags(parser)
    parser.add_argument("--version", action=_VersionAction)
    return parser


def build_probe_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saas-quota-exporter probe",
        description=(
            "Poll one account once and print the HTTP status, every reading, every problem"
            " and why a meter is absent (never the key); exit 0 when the poll succeeded."
            " --body parses a recorded answer offline instead."
        ),
        formatter_class=_HelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--config.file", dest="config_file", metavar="PATH")
    parser.add_argument("--account", required=True, metavar="PROVIDER/ACCOUNT")
    parser.add_argument("--body", metavar="FILE", help="a recorded response body (offline)")
    parser.add_argument("--status", type=int, default=200, help="its HTTP status")
    parser.add_argument("--headers", metavar="FILE", help="its headers, as a JSON object")
    add_log_flags(parser)
    # The probe prints its own report; the log is for what goes wrong on the way.
    parser.set_defaults(log_level="warning")
    return parser


def split_command(args: Sequence[str]) -> tuple[str | None, list[str]]:
    """The subcommand named in `args` and the arguments without its name.

    The name is the first argument that is neither a flag nor the value of one (as
    the main parser's flags take values), so `--log.level debug demo` is `demo`.
    """
    takes_value = {
        option
        for action in build_parser()._actions
        if action.nargs != 0
        for option in action.option_strings
    }
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            break
        if arg.startswith("-"):
            index += 2 if arg in takes_value else 1
            continue
        if arg in COMMANDS:
            return arg, [*args[:index], *args[index + 1 :]]
        break
    return None, list(args)


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

    from exporter.app import Exporter, ListenError
    from exporter.config import ConfigError, load_config
    from exporter.log import configure, get_logger
    from exporter.webconfig import WebConfigError, load_web_config

    command, args_list = split_command(sys.argv[1:] if argv is None else argv)
    if command == "probe":
        from exporter.probe import run_probe

        probe_args = build_probe_parser().parse_args(args_list)
        configure(probe_args.log_level, probe_args.log_format)
        return run_probe(
            probe_args.config_file,
            probe_args.account,
            probe_args.body,
            probe_args.status,
            probe_args.headers,
        )
    if command == "demo":
        from exporter.demo.run import run_demo

        args = build_parser(command).parse_args(args_list)
        configure(args.log_level, args.log_format)
        listen = _listen(args.listen)
        return run_demo(listen)

    parser = build_parser()
    args = parser.parse_args(args_list)
    configure(args.log_level, args.log_format)
    if not args.config_file:
        parser.error("--config.file is required (or run 'saas-quota-exporter demo')")
    if args.skip_key_files and not args.config_check:
        parser.error("--config.skip-key-files only goes with --config.check")
    # A usage error, reported as one before the config is even read.
    listen = _listen(args.listen)
    shard = _shard(args, parser)

    if args.config_check:
        return _check(
            args.config_file, args.web_config_file, read_key_files=not args.skip_key_files
        )

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
    except ListenError as exc:
        # A port in use is an operator's everyday mistake: one line, no traceback.
        log.error(str(exc), address=exc.address)
        return EXIT_CONFIG
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


def _check(path: str, web_config_file: str | None, *, read_key_files: bool = True) -> int:
    from exporter.config import ConfigError, load_config
    from exporter.webconfig import WebConfigError, load_web_config

    try:
        config = load_config(path, read_key_files=read_key_files)
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
    unread = config.unread_key_files
    skipped = (
        f"; {unread} key file{'s' if unread != 1 else ''} not read (--config.skip-key-files)"
        if unread
        else ""
    )
    print(f"{path}: OK ({len(config.accounts)} accounts{skipped})")
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
