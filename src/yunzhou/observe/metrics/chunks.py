"""Compact encodings for sealed chunks of samples and for 5-minute rollups.

Timestamps (int ms) are stored as deltas, values as the XOR of their IEEE-754 bits with the previous
value (Gorilla's idea, without the bit packing), and the result is zlib-compressed: regular scrapes make
long runs of equal deltas and mostly-zero XORs, which zlib shrinks to a few bytes per sample.
"""

from __future__ import annotations

import operator
import struct
import zlib
from array import array
from dataclasses import dataclass
from itertools import accumulate

_HEADER = struct.Struct("<BI")  # version, sample count
_RAW_V1 = 1
_ROLLUP_V1 = 2


def _delta(ts: array[int]) -> array[int]:
    if not ts:
        return array("q")
    return array("q", [ts[0], *map(operator.sub, ts[1:], ts[:-1])])


def _undelta(ds: array[int]) -> array[int]:
    return array("q", accumulate(ds))


def _xor(vs: array[float]) -> array[int]:
    bits = array("q")
    bits.frombytes(vs.tobytes())
    if not bits:
        return bits
    return array("q", [bits[0], *map(operator.xor, bits[1:], bits[:-1])])


def _unxor(bits: array[int]) -> array[float]:
    vs = array("d")
    vs.frombytes(array("q", accumulate(bits, operator.xor)).tobytes())
    return vs


def encode_samples(ts: array[int], vs: array[float]) -> bytes:
    """Encode parallel arrays of timestamps (ms, increasing) and values."""
    body = _delta(ts).tobytes() + _xor(vs).tobytes()
    return _HEADER.pack(_RAW_V1, len(ts)) + zlib.compress(body, 6)


def decode_samples(blob: bytes) -> tuple[array[int], array[float]]:
    version, n = _HEADER.unpack_from(blob)
    if version != _RAW_V1:
        raise ValueError(f"not a raw sample chunk (version {version})")
    body = zlib.decompress(blob[_HEADER.size :])
    ds = array("q")
    ds.frombytes(body[: 8 * n])
    xs = array("q")
    xs.frombytes(body[8 * n : 16 * n])
    return _undelta(ds), _unxor(xs)


@dataclass
class Rollups:
    """Per-bucket aggregates of a series (one entry per downsampling bucket, in time order).

    ``t``/``last``: the bucket's last sample. ``min``/``max``/``sum``/``count``: over the bucket's raw
    samples, for the *_over_time functions. Counter resets inside a bucket are kept as ``reset_t`` (the
    first reset's time) and ``reset_pre`` (the sum of the values just before each reset), NaN when the
    bucket had none, so that rate()/increase() over rollups see the same total increase as over raw data.
    """

    t: array[int]
    last: array[float]
    min: array[float]
    max: array[float]
    sum: array[float]
    count: array[float]
    reset_t: array[int]
    reset_pre: array[float]

    @classmethod
    def empty(cls) -> Rollups:
        return cls(
            array("q"), array("d"), array("d"), array("d"), array("d"), array("d"), array("q"), array("d")
        )

    def __len__(self) -> int:
        return len(self.t)

    def extend(self, other: Rollups) -> None:
        for name in ("t", "last", "min", "max", "sum", "count", "reset_t", "reset_pre"):
            getattr(self, name).extend(getattr(other, name))


def encode_rollups(r: Rollups) -> bytes:
    n = len(r.t)
    body = b"".join(
        [
            _delta(r.t).tobytes(),
            _xor(r.last).tobytes(),
            _xor(r.min).tobytes(),
            _xor(r.max).tobytes(),
            _xor(r.sum).tobytes(),
            _xor(r.count).tobytes(),
            _delta(r.reset_t).tobytes(),
            _xor(r.reset_pre).tobytes(),
        ]
    )
    return _HEADER.pack(_ROLLUP_V1, n) + zlib.compress(body, 6)


def decode_rollups(blob: bytes) -> Rollups:
    version, n = _HEADER.unpack_from(blob)
    if version != _ROLLUP_V1:
        raise ValueError(f"not a rollup chunk (version {version})")
    body = zlib.decompress(blob[_HEADER.size :])
    parts: list[array[int]] = []
    for i in range(8):
        a = array("q")
        a.frombytes(body[8 * n * i : 8 * n * (i + 1)])
        parts.append(a)
    return Rollups(
        t=_undelta(parts[0]),
        last=_unxor(parts[1]),
        min=_unxor(parts[2]),
        max=_unxor(parts[3]),
        sum=_unxor(parts[4]),
        count=_unxor(parts[5]),
        reset_t=_undelta(parts[6]),
        reset_pre=_unxor(parts[7]),
    )
