"""What `Redactor.scrub` costs per log line, with 100 registered keys.

    python -m benchmarks.scrub_cost [--keys 100] [--runs 5000]

scrub runs on every string of every log event, so its cost per line matters more
than its cost per key: the index makes it linear in the text and independent of the
number of keys. Timed on 200-character lines (the length vendor text is cut to):
an ordinary line, a JSON-ish line with escapes and percent signs (every view is
built), and lines carrying a key raw, base64-encoded and split over two lines.
Also times `register` of all keys (done once per config load), and, for scale on
the same machine, the exact-match scrubber this one replaced.

Prints a table; nothing is asserted (speed belongs to benchmarks, not to tests).
"""

from __future__ import annotations

import argparse
import base64
import random
import string
import time
import timeit

from exporter.redaction import Redactor

LINE_CHARS = 200


def _line(text: str) -> str:
    return (text + " " + "ordinary vendor text, nothing to hide here" * 5)[:LINE_CHARS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5000)
    args = parser.parse_args()

    rng = random.Random(8)
    alphabet = string.ascii_letters + string.digits
    keys = ["sk_live_" + "".join(rng.choices(alphabet, k=32)) for _ in range(args.keys)]
    redactor = Redactor()
    started = time.perf_counter()
    redactor.register(*keys)
    register_ms = (time.perf_counter() - started) * 1000
    key = keys[args.keys // 2]
    lines = {
        "ordinary": _line("poll failed for account prod-eu: HTTP 503 service unavailable"),
        "escapes and %": _line(
            '{"error": {"message": "see https:\\/\\/docs.example.com\\/auth?a=1&amp;b=%20"}}'
        ),
        "raw key": _line(f"HTTP 401: invalid key {key}"),
        "base64 key": _line("Basic " + base64.b64encode(f"user:{key}".encode()).decode()),
        "split key": _line(f"bad key {key[:12]}\n{key[12:]}"),
    }
    by_length = sorted(keys, key=len, reverse=True)

    def exact(text: str) -> str:
        # The scrubber before the window index, for scale on the same (shared) machine.
        for secret in by_length:
            if secret in text:
                text = text.replace(secret, "<redacted>")
        return text

    print(f"register {args.keys} keys: {register_ms:.1f} ms")
    print(f"{'line (' + str(LINE_CHARS) + ' chars)':<24} {'us per scrub':>12} {'exact match':>12}")
    for name, text in lines.items():
        row = [
            min(timeit.repeat(lambda t=text, f=f: f(t), number=args.runs, repeat=3))  # type: ignore[misc]
            for f in (redactor.scrub, exact)
        ]
        print(f"{name:<24} {row[0] / args.runs * 1e6:>12.1f} {row[1] / args.runs * 1e6:>12.1f}")


if __name__ == "__main__":
    main()
