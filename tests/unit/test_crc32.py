"""exporter/crc32.py: crc32_combine is zlib's, for any parts and any running crc."""

from __future__ import annotations

import zlib

from hypothesis import given
from hypothesis import strategies as st

from exporter.crc32 import crc32_combine, crc32_shift


@given(st.binary(max_size=300), st.binary(max_size=300), st.integers(0, 2**32 - 1))
def test_crc32_combine_is_zlibs(a: bytes, b: bytes, seed: int) -> None:
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    # Chained from a running crc, as a rebuild folds its families.
    assert crc32_combine(zlib.crc32(a, seed), zlib.crc32(b), len(b)) == zlib.crc32(
        b, zlib.crc32(a, seed)
    )


def test_crc32_combine_of_long_parts() -> None:
    a, b = b"x" * 3_000_001, bytes(range(256)) * 5000
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    shift = crc32_shift(len(b))  # kept per family while its length stays
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b), shift) == zlib.crc32(a + b)
