"""saas-quota-exporter: a Prometheus exporter for the quotas of paid SaaS APIs."""

from __future__ import annotations

__version__ = "0.1.0"

# The revision a build records (`git describe --always --dirty > exporter/REVISION`,
# e.g. in a container build, where .git is absent at run time). Without the file, a
# source checkout asks git; anything else is "unknown".
_REVISION_FILE = "REVISION"
# Go's GOARCH names, as the Prometheus exporters print them in their platform line.
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386"}


def revision() -> str:
    """The source revision this copy was built from, or "unknown"."""
    import subprocess
    from pathlib import Path

    here = Path(__file__).resolve().parent
    try:
        recorded = (here / _REVISION_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        recorded = ""
    if recorded:
        return recorded
    if not (here.parent / ".git").exists():
        # An installed wheel: git would describe whatever repository the cwd is in.
        return "unknown"
    try:
        result = subprocess.run(
            ["git", "-C", str(here.parent), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "unknown"


def version_text() -> str:
    """--version in the Prometheus exporters' layout (their `go version` is Python's)."""
    import platform
    import sys

    machine = platform.machine().lower()
    return (
        f"saas-quota-exporter, version {__version__} (revision: {revision()})\n"
        f"  python version:   {platform.python_version()}"
        f" ({platform.python_implementation()})\n"
        f"  platform:         {sys.platform}/{_ARCH.get(machine, machine or 'unknown')}"
    )
