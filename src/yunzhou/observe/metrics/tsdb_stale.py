"""The staleness marker: a NaN with one exact bit pattern that ends a series at its timestamp."""

from __future__ import annotations

import struct
from array import array

STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
_STALE_BITS = 0x7FF0000000000002

_STALE_BYTES = struct.pack("<Q", _STALE_BITS)


def has_stale(vs: array[float]) -> bool:
    """Whether any value is a staleness marker (a fast scan of the raw bytes, then an exact check)."""
    raw = vs.tobytes()
    i = raw.find(_STALE_BYTES)
    while i >= 0:
        if i % 8 == 0:
            return True
        i = raw.find(_STALE_BYTES, i + 1)
    return False


def is_stale(v: float) -> bool:
    """True for the staleness marker (and only for it, not for other NaNs)."""
    return v != v and struct.unpack("<Q", struct.pack("<d", v))[0] == _STALE_BITS
