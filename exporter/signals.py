"""SIGHUP, SIGTERM and SIGINT from the first line of the command on.

The asyncio loop takes the signals over once the exporter runs, but getting there
takes imports, the config load and binding the port: half a second or more, during
which a SIGHUP's default action would kill the process. `EARLY.install()` runs first
in `exporter.cli.main` and only records what arrives; the loop takes the record over
when it installs its own handlers, so no signal is lost or fatal in between.

Deliberately light: only the standard library's `signal`, so installing it costs
nothing before the slow imports.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any, Final

HANDLED: Final = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


class EarlySignals:
    """Records signals until the loop takes over; `take()` hands them on once."""

    def __init__(self) -> None:
        self.reload = False
        self.stop = False
        self._previous: dict[signal.Signals, Any] = {}

    def install(self) -> None:
        for sig in HANDLED:
            previous = signal.signal(sig, self._record)
            self._previous.setdefault(sig, previous)

    def restore(self) -> None:
        """Put back what was there before `install()` (for callers of main() in-process)."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
        self.reload = self.stop = False

    def config_read(self) -> None:
        """Called just before the config is first read: a SIGHUP before it is answered
        by that very read, so only one after it still asks for a reload."""
        self.reload = False

    def take(self) -> tuple[bool, bool]:
        """(reload pending, stop pending), and forget both."""
        pending = (self.reload, self.stop)
        self.reload = self.stop = False
        return pending

    def _record(self, signum: int, frame: FrameType | None) -> None:
        # Runs on the main thread between bytecodes: setting a flag is all it may do.
        if signum == signal.SIGHUP:
            self.reload = True
        else:
            self.stop = True


# Signals are process-wide, and so is what arrived before the loop ran.
EARLY: Final = EarlySignals()
