"""ACME HTTP-01 answers as the router serves them (names/tls/http01.py): strict tokens, no path escapes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from yunzhou.names.tls.http01 import (
    CHALLENGE_PATH_PREFIX,
    MAX_TOKEN_LENGTH,
    DirectoryResponder,
    challenge_answer,
    valid_token,
)

TOKEN = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"


@pytest.mark.parametrize("token", [TOKEN, "a", "A-_z09", "x" * MAX_TOKEN_LENGTH])
def test_valid_token_accepts_base64url(token: str) -> None:
    assert valid_token(token)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "..",
        "../etc",
        "a/b",
        "a.b",
        ".hidden",
        "a=",
        "a%2f",
        "a b",
        "a\x00",
        "é",
        "x" * (MAX_TOKEN_LENGTH + 1),
    ],
)
def test_valid_token_refuses_anything_else(token: str) -> None:
    assert not valid_token(token)


def test_challenge_answer_reads_only_a_regular_file_named_by_a_strict_token(tmp_path: Path) -> None:
    served = tmp_path / "challenges"
    DirectoryResponder(served).deploy(TOKEN, TOKEN + ".thumb")
    (tmp_path / "outside").write_text("secret")
    os.symlink(tmp_path / "outside", served / "link")
    (served / "dir").mkdir()

    assert challenge_answer(served, CHALLENGE_PATH_PREFIX + TOKEN) == (TOKEN + ".thumb").encode()
    assert challenge_answer(served, "/" + TOKEN) is None  # not the challenge path
    assert challenge_answer(served, CHALLENGE_PATH_PREFIX + "../outside") is None
    assert challenge_answer(served, CHALLENGE_PATH_PREFIX + "link") is None  # symlinks are not followed
    assert challenge_answer(served, CHALLENGE_PATH_PREFIX + "dir") is None
    assert challenge_answer(served, CHALLENGE_PATH_PREFIX + "absent") is None
    assert challenge_answer(served, CHALLENGE_PATH_PREFIX + TOKEN + "/") is None
    assert challenge_answer(tmp_path / "missing-dir", CHALLENGE_PATH_PREFIX + TOKEN) is None


def test_responder_removes_its_file_and_refuses_a_token_that_names_a_path(tmp_path: Path) -> None:
    responder = DirectoryResponder(tmp_path / "challenges")
    responder.deploy(TOKEN, "answer")
    assert sorted(p.name for p in (tmp_path / "challenges").iterdir()) == [TOKEN]  # no temp file left
    responder.remove(TOKEN)
    responder.remove(TOKEN)  # absent: not an error
    assert list((tmp_path / "challenges").iterdir()) == []
    with pytest.raises(ValueError, match="base64url"):
        responder.deploy("../escape", "answer")
    assert not (tmp_path / "escape").exists()
