"""ACME HTTP-01 (RFC 8555 §8.3) without the ACME client: where key authorizations are kept and served.

The issuer writes ``<directory>/<token>`` holding the key authorization (``DirectoryResponder``); the
router, started with ``--acme-challenges <directory>``, answers ``GET /.well-known/acme-challenge/<token>``
on its plain HTTP listener with that file (``challenge_answer``). Tokens are strict base64url, so a
token can never name a file outside the directory. Kept free of the ACME library: the router imports it.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

CHALLENGE_PATH_PREFIX = "/.well-known/acme-challenge/"
MAX_TOKEN_LENGTH = 128
MAX_ANSWER_BYTES = 1024  # a key authorization is the token, '.', and a 43-character thumbprint
_TOKEN_RE = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_TOKEN_LENGTH}}}")


def valid_token(token: str) -> bool:
    """Whether ``token`` is base64url (RFC 4648 §5, no padding), 1 to 128 characters: no '/', '.', '%'."""
    return _TOKEN_RE.fullmatch(token) is not None


def challenge_answer(directory: Path, path: str) -> bytes | None:
    """The key authorization to answer for a request path, or None (not a challenge path, a token that is
    not strict base64url, or no such regular file in ``directory``; symbolic links are not followed)."""
    if not path.startswith(CHALLENGE_PATH_PREFIX):
        return None
    token = path[len(CHALLENGE_PATH_PREFIX) :]
    if not valid_token(token):
        return None
    try:
        fd = os.open(directory / token, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, MAX_ANSWER_BYTES)
    finally:
        os.close(fd)


class DirectoryResponder:
    """HTTP-01 through files a router serves: ``deploy`` writes ``path/<token>``, ``remove`` deletes it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def deploy(self, token: str, key_authorization: str) -> None:
        if not valid_token(token):
            raise ValueError(f"ACME token {token!r} is not base64url")
        self.path.mkdir(mode=0o755, parents=True, exist_ok=True)
        target = self.path / token
        tmp = target.with_name(f".{token}.tmp")
        tmp.write_text(key_authorization, encoding="ascii")
        tmp.replace(target)  # the router reads the whole answer or none

    def remove(self, token: str) -> None:
        if valid_token(token):
            (self.path / token).unlink(missing_ok=True)
