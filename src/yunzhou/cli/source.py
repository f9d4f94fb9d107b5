"""What ``deploy --source`` leaves out of the upload, said in one line (docs/cli.md, "What --source
leaves out")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

from yunzhou.client import LeftOut

IncludeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--include",
        metavar="NAME",
        help="With --source: upload a folder or file it leaves out by default (.venv, node_modules, .git, "
        "__pycache__, score.yaml, yunzhou.yaml) anyway (repeatable).",
    ),
]

# why each kind is left out, in the order they are said
_WHY = {
    "dependencies": "built for this machine; the app runs with what its target has installed",
    "cache": "history and caches",
    "data dir": "a Yunzhou data dir (token, database), never uploaded",
    "platform file": "the deploy's own Score and settings, which the app would otherwise serve",
}


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _amount(item: LeftOut) -> str:
    if not item.folders:
        return item.name if item.files == 1 else f"{item.name} ({_count(item.files, 'file')})"
    inside = f"{_count(item.folders, 'folder')}, {_count(item.files, 'file')}"
    return f"{item.name} ({inside}, {item.bytes / 1048576:.1f} MiB)"


def left_out_line(items: Sequence[LeftOut]) -> str | None:
    """``Left out of the upload: .venv (1 folder, 812 files, 31.2 MiB): built for this machine; …``."""
    parts = []
    for why, reason in _WHY.items():
        named = [_amount(item) for item in items if item.why == why]
        if named:
            parts.append(f"{', '.join(named)}: {reason}")
    if not parts:
        return None
    may_include = any(item.why != "data dir" for item in items)
    hint = " (--include NAME uploads one anyway)" if may_include else ""
    return "Left out of the upload: " + "; ".join(parts) + hint
