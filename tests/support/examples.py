"""How many examples a Hypothesis test draws: its own number, or a fifth in `make check`.

`make check` sets HYPOTHESIS_PROFILE=check so the unit tier stays a fast loop; `make
test` and CI draw every example each test asks for (CI with the same examples every
run, see tests/conftest.py).
"""

from __future__ import annotations

import os


def examples(count: int) -> int:
    """`count`, or a fifth of it (at least 5) under HYPOTHESIS_PROFILE=check."""
    if os.environ.get("HYPOTHESIS_PROFILE") == "check":
        return max(5, count // 5)
    return count
