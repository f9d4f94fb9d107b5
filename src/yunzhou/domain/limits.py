"""How much a client may send: request bodies, uploaded archives and what an archive unpacks to.

Server settings (``YUNZHOU_MAX_*`` environment variables; docs/api.md#limits). Every refusal names the
limit and the setting that changes it, so an operator knows what to raise and a user what to shrink.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from yunzhou.domain.errors import invalid
from yunzhou.domain.score import parse_memory_bytes

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# field → (environment variable, what it bounds)
SETTINGS: dict[str, tuple[str, str]] = {
    "json_body": ("YUNZHOU_MAX_JSON_BODY", "a JSON request body"),
    "form_body": ("YUNZHOU_MAX_FORM_BODY", "a console form"),
    "artifact_body": ("YUNZHOU_MAX_ARTIFACT_BYTES", "an uploaded archive"),
    "unpacked_bytes": ("YUNZHOU_MAX_UNPACKED_BYTES", "what an archive unpacks to"),
    "unpacked_files": ("YUNZHOU_MAX_UNPACKED_FILES", "the entries in an archive"),
    "stack_archive_body": ("YUNZHOU_MAX_STACK_ARCHIVE", "a stack archive (POST /stacks/import, admins)"),
}


@dataclass(frozen=True)
class Limits:
    json_body: int = MiB
    form_body: int = MiB  # a Score file pasted into the deploy form fits
    artifact_body: int = 200 * MiB  # compressed
    unpacked_bytes: int = GiB
    unpacked_files: int = 20_000  # files, directories and links
    stack_archive_body: int = 4 * GiB  # exported stacks: ~50-150 MiB each, node twice (run + build image)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        """Sizes take a unit (``1Mi``, ``200Mi``, ``1Gi``, ``500M``) or are bytes; the count is a number."""
        values: dict[str, int] = {}
        for item in fields(cls):
            name, _ = SETTINGS[item.name]
            text = env.get(name, "").strip()
            if not text:
                continue
            if item.name == "unpacked_files":
                if not text.isdigit() or int(text) < 1:
                    raise invalid(name, f"{text!r} is not a positive whole number")
                values[item.name] = int(text)
            else:
                values[item.name] = parse_memory_bytes(text, name)
        return cls(**values)

    def describe(self, name: str) -> str:
        """``1 MiB (server setting YUNZHOU_MAX_JSON_BODY)``: the limit as a refusal names it."""
        value: int = getattr(self, name)
        amount = str(value) if name == "unpacked_files" else format_bytes(value)
        return f"{amount} (server setting {SETTINGS[name][0]})"


def format_bytes(value: int) -> str:
    """Exact, in the largest binary unit that divides it: ``200 MiB``, ``1 GiB``, ``1500 bytes``."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if value >= size and value % size == 0:
            return f"{value // size} {unit}"
    return f"{value} bytes"
