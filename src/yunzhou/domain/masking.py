"""Masking an app's secret values in what it logs, as CI systems mask secrets in job logs (pure).

A developer may set a secret but not reveal it (docs/config.md); an app that prints its environment would
otherwise hand the value to anyone who may read its logs. So every line an app writes is masked before it
is stored or shown: each known secret value of the app's release becomes ``***``, and so do its common
encodings — JSON string escaping, percent-encoding, and base64 (standard and URL-safe, at each of the three
byte alignments, so the value is found inside a longer encoded string such as ``Basic base64(user:pass)``).
Values shorter than ``MIN_LENGTH`` are not masked: masking ``1`` or ``true`` would erase ordinary text and
tell everyone the secret's value; choose secrets longer than that. Each line of a multi-line value (a PEM
key) is masked on its own, since logs are kept line by line."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

MASK = "***"
MIN_LENGTH = 6


def _base64_forms(value: bytes) -> set[str]:
    """The base64 text of ``value`` wherever it starts in a longer input: at each alignment, the
    characters that depend on ``value``'s bytes only."""
    out = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + value).decode()
        start = -(-8 * offset // 6)  # characters touched by the bytes before the value
        end = 8 * (offset + len(value)) // 6  # characters wholly inside the value
        core = encoded[start:end]
        if len(core) >= MIN_LENGTH:
            out |= {core, core.replace("+", "-").replace("/", "_")}
    return out


def forms(value: str) -> set[str]:
    """Every text ``value`` is masked as (empty for a value too short to mask)."""
    out: set[str] = set()
    for part in {value, *value.splitlines()}:
        if len(part) < MIN_LENGTH:
            continue
        out |= {part, json.dumps(part)[1:-1], quote(part, safe=""), quote(part, safe="/:@")}
        out |= _base64_forms(part.encode())
    return {f for f in out if len(f) >= MIN_LENGTH}


@dataclass(frozen=True)
class SecretMask:
    """Masks the secret values of one release. Never in a repr: it holds the values themselves."""

    needles: tuple[str, ...] = ()  # longest first, so no part of a longer form survives a shorter one

    def __repr__(self) -> str:
        return f"SecretMask({len(self.needles)} forms)"

    @classmethod
    def of(cls, values: Iterable[str]) -> SecretMask:
        found: set[str] = set()
        for v in values:
            found |= forms(v)
        return cls(tuple(sorted(found, key=lambda f: (-len(f), f))))

    def __bool__(self) -> bool:
        return bool(self.needles)

    def apply(self, text: str) -> str:
        for needle in self.needles:
            if needle in text:
                text = text.replace(needle, MASK)
        return text


NO_MASK = SecretMask()
