"""Message catalogs (messages/<lang>.json) and language negotiation: cookie first, then Accept-Language."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from yunzhou.domain.preferences import LANGUAGES as LANGUAGES

DEFAULT_LANGUAGE = "en"
LANG_COOKIE = "yz_lang"


@cache
def catalog(lang: str) -> dict[str, str]:
    text = resources.files("yunzhou.web").joinpath("messages", f"{lang}.json").read_text(encoding="utf-8")
    messages: dict[str, str] = json.loads(text)
    return messages


def translate(lang: str, key: str, **values: Any) -> str:
    """The message for ``key`` in ``lang`` (English when missing there; the key itself as a last resort)."""
    text = catalog(lang).get(key) or catalog(DEFAULT_LANGUAGE).get(key) or key
    return text.format(**values) if values else text


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return str(cookie)
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, index, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE
