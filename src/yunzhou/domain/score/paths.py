"""Field paths in problems: ``containers.web.command.2``; keys other than ``[A-Za-z0-9_-]+`` are quoted.

A file target or an annotation key contains dots and slashes, so it is written as a JSON string in
brackets: ``containers.web.files["/etc/app.conf"].mode``.
"""

from __future__ import annotations

import json
import re

_PLAIN_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")


def at(path: str, key: str | int) -> str:
    """The path of ``key`` (a mapping key or a list index) inside ``path``."""
    if isinstance(key, int):
        segment = str(key)
    elif _PLAIN_KEY_RE.fullmatch(key):
        segment = key
    else:
        return f"{path}[{json.dumps(key, ensure_ascii=False)}]"
    return f"{path}.{segment}" if path else segment
