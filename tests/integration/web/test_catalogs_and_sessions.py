"""Message catalogs cover every key the templates use; templates hold no hard-coded UI text; sessions
and CSRF tokens cannot be forged; language negotiation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from yunzhou.web.i18n import LANGUAGES, catalog, negotiate
from yunzhou.web.session import SessionBox

TEMPLATES = Path(__file__).resolve().parents[3] / "src" / "yunzhou" / "web" / "templates"
KEY_RE = re.compile(r"""_\(\s*["']([a-zA-Z0-9_.-]+)["']\s*[,)]""")
PREFIX_RE = re.compile(r"""_\(\s*["']([a-zA-Z0-9_.-]+\.)["']\s*~""")
# words allowed outside translation calls: none; only symbols, numbers and template syntax remain
TEXT_RE = re.compile(r"[A-Za-z\u4e00-\u9fff]{2,}")


def templates() -> list[Path]:
    return sorted(TEMPLATES.rglob("*.html"))


def test_catalogs_have_the_same_keys() -> None:
    assert set(catalog("en")) == set(catalog("zh-CN"))
    assert all(catalog("zh-CN")[key] for key in catalog("en"))


def test_every_key_used_in_templates_exists() -> None:
    keys = set(catalog("en"))
    used = {key for path in templates() for key in KEY_RE.findall(path.read_text())}
    assert used - keys == set()
    prefixes = {p for path in templates() for p in PREFIX_RE.findall(path.read_text())}
    for prefix in prefixes:
        assert any(key.startswith(prefix) for key in keys), prefix


def test_every_app_status_the_server_writes_has_a_message() -> None:
    """The badge shows ``status.<status>``: a status with no message showed its raw key."""
    src = TEMPLATES.parents[1]
    written: set[str] = set()
    for path in (src / "reconcile" / "apps.py", src / "services" / "apps.py"):
        for line in path.read_text().splitlines():
            if re.search(r"\bstatus\s*=", line):
                written |= set(re.findall(r'"([a-z]+)"', line))
    assert {"pending", "progressing", "running", "stopped", "degraded", "failed"} <= written
    for lang in LANGUAGES:
        assert {s for s in written if f"status.{s}" not in catalog(lang)} == set(), lang


@pytest.mark.parametrize("path", templates(), ids=lambda p: p.name)
def test_templates_have_no_hard_coded_text(path: Path) -> None:
    text = path.read_text()
    text = re.sub(r"\{#.*?#\}", "", text, flags=re.S)
    text = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "", text, flags=re.S)
    text = re.sub(r"<script\b.*?</script>", "", text, flags=re.S)
    text = re.sub(r"<[^>]*>", "", text, flags=re.S)  # tags and their attributes
    assert TEXT_RE.findall(text) == []


def test_sessions_cannot_be_forged_or_moved_between_keys() -> None:
    box, other = SessionBox(b"k" * 32), SessionBox(b"o" * 32)
    sealed = box.seal("yzt_secret", "dana")
    assert "yzt_secret" not in sealed
    session = box.open(sealed)
    assert session is not None
    assert (session.token, session.principal) == ("yzt_secret", "dana")
    assert other.open(sealed) is None
    assert box.open(sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]) is None
    assert box.open("garbage") is None


def test_sessions_expire() -> None:
    now = [1000.0]
    box = SessionBox(b"k" * 32, now=lambda: now[0])
    sealed = box.seal("t", "p")
    now[0] += 13 * 3600
    assert box.open(sealed) is None


def test_csrf_tokens_are_bound_to_the_browser_seed() -> None:
    box = SessionBox(b"k" * 32)
    token = box.csrf_token("seed-a")
    assert box.csrf_valid("seed-a", token)
    assert not box.csrf_valid("seed-b", token)
    assert not box.csrf_valid(None, token)
    assert not box.csrf_valid("seed-a", None)


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, None, "en"),
        (None, "zh-CN,zh;q=0.9", "zh-CN"),
        (None, "zh-TW", "zh-CN"),
        (None, "fr, en;q=0.5, zh;q=0.8", "zh-CN"),
        (None, "de", "en"),
        ("en", "zh-CN", "en"),
        ("zh-CN", "en", "zh-CN"),
        ("xx", "en", "en"),
    ],
)
def test_language_negotiation(cookie: str | None, header: str | None, expected: str) -> None:
    assert negotiate(cookie, header) == expected
    assert expected in LANGUAGES
