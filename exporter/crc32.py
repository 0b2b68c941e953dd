"""The crc32 of a concatenation from the crc32s of its parts.

zlib's crc32_combine (its 1.2.12 algorithm), which Python's zlib does not expose.
Why we need it: the gzip trailer of /metrics needs the crc32 of the whole
exposition, and a family that did not change keeps its crc32 (and the operator for
its length), so a rebuild combines ~20 of them (a few us each) instead of reading
30 MB again (exporter/render.py).
"""

from __future__ import annotations

from typing import Final

_CRC_POLY: Final = 0xEDB88320


def _multmodp(a: int, b: int) -> int:
    """a * b modulo the CRC-32 polynomial (reflected bit order); a must not be 0."""
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _CRC_POLY if b & 1 else b >> 1


def _x2n_table() -> tuple[int, ...]:
    p = 1 << 30  # x^1
    table = [p]
    for _ in range(31):
        p = _multmodp(p, p)
        table.append(p)
    return tuple(table)


_X2N: Final = _x2n_table()  # x^(2^n) modulo the polynomial


def crc32_shift(len2: int) -> int:
    """The operator crc32_combine applies for a second part of len2 bytes.

    The costly half (~100 us); a family keeps it while its length stays the same.
    """
    p = 1 << 31  # x^0
    n, k = len2, 3  # x^(8 * len2)
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return p


def crc32_combine(crc1: int, crc2: int, len2: int, shift: int | None = None) -> int:
    """zlib.crc32(a + b) from crc1 = crc32(a), crc2 = crc32(b) and len2 = len(b);
    `shift` is crc32_shift(len2) when known."""
    return _multmodp(crc32_shift(len2) if shift is None else shift, crc1) ^ crc2
