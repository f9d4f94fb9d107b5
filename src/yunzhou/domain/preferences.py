"""A user's preferences (kept per principal on the server, so every browser and device gets them)."""

from __future__ import annotations

from typing import Any

from yunzhou.domain.errors import FieldProblem, UserError

LANGUAGES = ("en", "zh-CN")
FIELDS = ("language",)


def parse_preferences(body: dict[str, Any]) -> dict[str, str | None]:
    """The fields a PUT sets (a field left out is left as it is; ``null`` clears it).

    Every problem is reported at once, naming the field and what is allowed; nothing is written then."""
    problems: list[FieldProblem] = []
    out: dict[str, str | None] = {}
    for key in body:
        if key not in FIELDS:
            problems.append(FieldProblem(key, f"unknown preference; allowed: {', '.join(FIELDS)}"))
    if "language" in body:
        language = body["language"]
        if language is not None and language not in LANGUAGES:
            problems.append(
                FieldProblem("language", f"{language!r} is not allowed; allowed: {', '.join(LANGUAGES)}")
            )
        else:
            out["language"] = language
    if problems:
        raise UserError("; ".join(f"{p.path}: {p.message}" for p in problems), problems=problems)
    return out
