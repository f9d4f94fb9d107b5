"""Shared pieces of the contract fake: the error it answers with, the caller, small helpers."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]
ADMIN_TOKEN = "admin-secret"
NOW = "2024-05-01T10:00:00Z"
LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class Problem(Exception):
    def __init__(self, status: int, code: str, message: str, problems: list[Json] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.problems = status, code, message, problems or []


def invalid(path: str, message: str) -> Problem:
    return Problem(422, "invalid", f"{path}: {message}", [{"path": path, "message": message}])


def merge(base: Json, patch: Json) -> Json:
    result = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


@dataclass
class Caller:
    principal: str
    token_id: str
    scopes: list[str]

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes
