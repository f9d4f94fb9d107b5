"""What changed between two releases, as short human lines. Values are shown only where they are safe
and short (images, artifacts, replica counts); everything else is named by path only."""

from __future__ import annotations

from typing import Any

from yunzhou.domain.config import config_changes
from yunzhou.store.models import Release

_SHOW_VALUES = ("image", "replicas", "maxSurge", "maxUnavailable", "strategy")


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            _flatten(v, f"{prefix}.{i}", out)
    else:
        out[prefix] = value


def describe_changes(
    previous: Release | None,
    score: dict[str, Any],
    settings: dict[str, Any],
    artifact: str | None,
    config: dict[str, Any] | None = None,
) -> list[str]:
    if previous is None:
        return ["first release"]
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    _flatten({"score": previous.score, "settings": previous.settings}, "", before)
    _flatten({"score": score, "settings": settings}, "", after)
    lines: list[str] = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path, _MISSING), after.get(path, _MISSING)
        if old == new:
            continue
        shown = path.rsplit(".", 1)[-1] in _SHOW_VALUES
        if old is _MISSING:
            lines.append(f"{path}: added" + (f" ({new})" if shown else ""))
        elif new is _MISSING:
            lines.append(f"{path}: removed")
        else:
            lines.append(f"{path}: {old} → {new}" if shown else f"{path}: changed")
    if previous.artifact != artifact:
        lines.append(f"artifact: {_short(previous.artifact)} → {_short(artifact)}")
    if config is not None:
        lines += config_changes(previous.config or {}, config)  # names only, never values
    return lines or ["no changes (redeploy)"]


def _short(digest: str | None) -> str:
    return digest[:19] if digest else "none"


_MISSING = object()
