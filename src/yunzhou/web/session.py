"""Console sessions: an API token sealed in an HttpOnly cookie, and CSRF tokens for every form.

Every session has an id; logout puts it on this process's list of ended sessions (kept until the session
would have expired), so a copy of the cookie replayed after logout opens nothing. The list is in memory:
a restart forgets it, which matters only when ``YUNZHOU_CONSOLE_KEY`` keeps sessions across restarts
(docs/console.md).

The cookie is AES-GCM encrypted and authenticated with a key the browser never sees, so page scripts
cannot read the token and nobody can forge or alter a session. The key comes from
``YUNZHOU_CONSOLE_KEY`` (base64 of 32 bytes) or is made at start; then sessions end with the process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SESSION_COOKIE = "yz_session"
CSRF_COOKIE = "yz_csrf"
SESSION_TTL = 12 * 3600
KEY_ENV = "YUNZHOU_CONSOLE_KEY"


@dataclass(frozen=True)
class Session:
    token: str
    principal: str
    expires_at: float
    sid: str = ""  # the session's id, for the list of ended sessions


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionBox:
    """Seals sessions into cookie values and signs CSRF tokens; ``now`` is injectable for tests."""

    def __init__(self, key: bytes | None = None, now: Callable[[], float] = time.time) -> None:
        if key is None:
            configured = os.environ.get(KEY_ENV)
            key = _unb64(configured) if configured else secrets.token_bytes(32)
        if len(key) != 32:
            raise ValueError(f"{KEY_ENV} must be 32 bytes (base64-encoded)")
        self._aead = AESGCM(key)
        self._mac_key = hashlib.sha256(b"yunzhou-console-csrf" + key).digest()
        self._now = now
        self._ended: dict[str, float] = {}  # session id → its expiry (no longer needed after it)
        self._lock = threading.Lock()

    def seal(self, token: str, principal: str) -> str:
        payload = {"t": token, "p": principal, "e": self._now() + SESSION_TTL, "s": secrets.token_urlsafe(12)}
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, json.dumps(payload).encode(), SESSION_COOKIE.encode())
        return _b64(nonce + sealed)

    def open(self, value: str | None) -> Session | None:
        """The session in a cookie value, or None when it is missing, forged, altered or expired."""
        if not value:
            return None
        try:
            raw = _unb64(value)
            plain = self._aead.decrypt(raw[:12], raw[12:], SESSION_COOKIE.encode())
            payload = json.loads(plain)
            session = Session(str(payload["t"]), str(payload["p"]), float(payload["e"]), str(payload["s"]))
        except (InvalidTag, ValueError, KeyError, TypeError, binascii.Error):
            return None
        if session.sid in self._ended:
            return None
        return session if session.expires_at > self._now() else None

    def end(self, session: Session) -> None:
        """Logout: this session's cookie opens nothing any more, whoever sends it."""
        now = self._now()
        with self._lock:
            for sid in [sid for sid, expiry in self._ended.items() if expiry <= now]:
                del self._ended[sid]
            self._ended[session.sid] = session.expires_at

    @staticmethod
    def new_csrf_seed() -> str:
        return secrets.token_urlsafe(24)

    def csrf_token(self, seed: str) -> str:
        """The value forms must send back: an HMAC of the browser's CSRF cookie that only we can make."""
        return hmac.new(self._mac_key, seed.encode(), hashlib.sha256).hexdigest()

    def csrf_valid(self, seed: str | None, sent: str | None) -> bool:
        if not seed or not sent:
            return False
        return hmac.compare_digest(self.csrf_token(seed), sent)
