"""Encryption of secrets at rest: AES-256-GCM under keys kept outside the database.

A ``KeyProvider`` holds the keys: the current one encrypts, any of them decrypts (so a rotation never
breaks a reader). Two providers ship: ``FileKeyring`` (``<data dir>/secret-keys``, mode 0600, the default)
and ``EnvKeyring`` (``YUNZHOU_SECRET_KEY``); a KMS would be a third with the same four methods.
Every ciphertext records the id of its key and is bound (as associated data) to the row it belongs to, so
it cannot be moved to another secret unnoticed.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import os
import secrets
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from yunzhou.domain.errors import Conflict, PermanentError

KEYRING_FILE = "secret-keys"
ENV_VAR = "YUNZHOU_SECRET_KEY"
_NONCE = 12
_SEALED_PREFIX = "yz1"


class SecretKeyError(PermanentError):
    """A ciphertext cannot be decrypted: its key is gone, it was altered, or it belongs to another row."""


class KeyProvider(Protocol):
    def current(self) -> tuple[str, bytes]:
        """The id and bytes of the key that encrypts from now on."""
        ...

    def key(self, key_id: str) -> bytes | None:
        """Any key still accepted for decryption, or None."""
        ...

    def begin_rotation(self) -> str:
        """Make a new key current (the old ones still decrypt); returns its id."""
        ...

    def retire(self, keep: Collection[str]) -> list[str]:
        """Stop accepting every key not in ``keep``; returns the ids dropped."""
        ...


def new_key_id() -> str:
    return "k" + secrets.token_hex(4)


class FileKeyring:
    """``{"current": id, "keys": {id: base64 key}}`` in a 0600 file, written atomically under a lock.

    A key id this process does not know makes it read the file again: another process (a separate
    ``yunzhou worker``) may have rotated meanwhile.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._current = ""
        self._keys: dict[str, bytes] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._file_lock():
            if not self.path.exists():
                key_id = new_key_id()
                self._write({key_id: AESGCM.generate_key(256)}, key_id)
            self._read()

    def _file_lock(self) -> _Flock:
        return _Flock(self.path.with_name(self.path.name + ".lock"))

    def _read(self) -> None:
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            raise SecretKeyError(
                f"{self.path} is readable by others (mode {mode:o}); run `chmod 600 {self.path}`"
            )
        try:
            doc = json.loads(self.path.read_text())
            keys = {str(k): base64.b64decode(v, validate=True) for k, v in doc["keys"].items()}
            current = str(doc["current"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise SecretKeyError(f"the keyring {self.path} cannot be read: {type(exc).__name__}") from None
        if current not in keys or any(len(k) != 32 for k in keys.values()):
            raise SecretKeyError(f"the keyring {self.path} is inconsistent (current key or key length)")
        with self._lock:
            self._keys, self._current = keys, current

    def _write(self, keys: Mapping[str, bytes], current: str) -> None:
        doc = {"current": current, "keys": {k: base64.b64encode(v).decode() for k, v in keys.items()}}
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def current(self) -> tuple[str, bytes]:
        with self._lock:
            return self._current, self._keys[self._current]

    def key(self, key_id: str) -> bytes | None:
        with self._lock:
            found = self._keys.get(key_id)
        if found is None:
            self._read()
            with self._lock:
                found = self._keys.get(key_id)
        return found

    def key_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._keys)

    def begin_rotation(self) -> str:
        with self._file_lock():
            self._read()
            key_id = new_key_id()
            keys = {**self._keys, key_id: AESGCM.generate_key(256)}
            self._write(keys, key_id)
            self._read()
            return key_id

    def retire(self, keep: Collection[str]) -> list[str]:
        with self._file_lock():
            self._read()
            kept = {k: v for k, v in self._keys.items() if k in keep or k == self._current}
            dropped = sorted(set(self._keys) - set(kept))
            if dropped:
                self._write(kept, self._current)
                self._read()
            return dropped


class EnvKeyring:
    """Keys from ``YUNZHOU_SECRET_KEY``: ``ID=BASE64,ID=BASE64`` (or one bare base64 key); the first
    encrypts. Rotating means: put the new key first, run ``yunzhou secret rotate-key``, then remove the
    old one from the variable."""

    def __init__(self, value: str) -> None:
        self._keys: dict[str, bytes] = {}
        self._order: list[str] = []
        for i, item in enumerate(part.strip() for part in value.split(",") if part.strip()):
            key_id, sep, encoded = item.partition("=")
            if not sep or not encoded:  # a bare key (base64 may end in '='): derive its id
                encoded = item
                key_id = ""
            try:
                key = base64.b64decode(encoded, validate=True)
            except (ValueError, binascii.Error):
                raise SecretKeyError(f"{ENV_VAR}: key {i + 1} is not base64") from None
            if len(key) != 32:
                raise SecretKeyError(f"{ENV_VAR}: key {i + 1} must be 32 bytes (base64 of 32 random bytes)")
            key_id = key_id or "env-" + hashlib.sha256(key).hexdigest()[:8]
            self._keys[key_id] = key
            self._order.append(key_id)
        if not self._order:
            raise SecretKeyError(f"{ENV_VAR} is set but holds no key")

    def current(self) -> tuple[str, bytes]:
        return self._order[0], self._keys[self._order[0]]

    def key(self, key_id: str) -> bytes | None:
        return self._keys.get(key_id)

    def key_ids(self) -> list[str]:
        return list(self._order)

    def begin_rotation(self) -> str:
        return self._order[0]  # the operator already made the new key current by putting it first

    def retire(self, keep: Collection[str]) -> list[str]:
        unused = [k for k in self._order if k not in keep and k != self._order[0]]
        if unused:
            raise Conflict(
                f"re-encrypted under {self._order[0]}; remove {', '.join(unused)} from {ENV_VAR} "
                "and restart the control plane to stop accepting the old key"
            )
        return []


@dataclass
class SecretBox:
    """Encrypts and decrypts with the provider's keys. ``seal``/``open`` give self-describing strings."""

    keys: KeyProvider

    def encrypt(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        key_id, key = self.keys.current()
        nonce = os.urandom(_NONCE)
        return key_id, nonce + AESGCM(key).encrypt(nonce, plaintext, aad)

    def decrypt(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        key = self.keys.key(key_id)
        if key is None:
            raise SecretKeyError(f"the key {key_id!r} is not in the keyring: this secret cannot be decrypted")
        try:
            return AESGCM(key).decrypt(bytes(blob[:_NONCE]), bytes(blob[_NONCE:]), aad)
        except InvalidTag:
            raise SecretKeyError(
                f"a ciphertext under key {key_id!r} failed authentication (altered, or not this row's)"
            ) from None

    def seal(self, plaintext: bytes) -> str:
        key_id, blob = self.encrypt(plaintext, b"")
        return f"{_SEALED_PREFIX}:{key_id}:{base64.b64encode(blob).decode()}"

    def open(self, sealed: str) -> bytes:
        prefix, key_id, encoded = [*sealed.split(":", 2), "", ""][:3]
        if prefix != _SEALED_PREFIX or not key_id:
            raise SecretKeyError("not a sealed value")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise SecretKeyError("a sealed value is not valid base64") from None
        return self.decrypt(key_id, blob, b"")

    @staticmethod
    def sealed_key_id(sealed: str) -> str:
        return sealed.split(":", 2)[1] if sealed.count(":") >= 2 else ""


class LazyKeyProvider:
    """Loads its provider on first use: a control plane that never touches a secret creates no keyring."""

    def __init__(self, load: Callable[[], KeyProvider]) -> None:
        self._load = load
        self._provider: KeyProvider | None = None
        self._lock = threading.Lock()

    def _get(self) -> KeyProvider:
        with self._lock:
            if self._provider is None:
                self._provider = self._load()
            return self._provider

    def current(self) -> tuple[str, bytes]:
        return self._get().current()

    def key(self, key_id: str) -> bytes | None:
        return self._get().key(key_id)

    def begin_rotation(self) -> str:
        return self._get().begin_rotation()

    def retire(self, keep: Collection[str]) -> list[str]:
        return self._get().retire(keep)


def load_key_provider(data_dir: Path, environ: Mapping[str, str] | None = None) -> KeyProvider:
    """``YUNZHOU_SECRET_KEY`` when set, else the keyring file in the data dir (created on first use)."""
    value = (environ if environ is not None else os.environ).get(ENV_VAR, "")
    if value.strip():
        return EnvKeyring(value)
    return FileKeyring(data_dir / KEYRING_FILE)


class _Flock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def __enter__(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *_: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
