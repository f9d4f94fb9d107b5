"""Secret encryption: AES-GCM with a key id per ciphertext, bound to its row; keyrings and rotation."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from yunzhou.domain.errors import Conflict
from yunzhou.store.crypto import EnvKeyring, FileKeyring, SecretBox, SecretKeyError, load_key_provider


def test_round_trip_and_the_ciphertext_does_not_contain_the_value(tmp_path: Path) -> None:
    box = SecretBox(FileKeyring(tmp_path / "secret-keys"))
    key_id, blob = box.encrypt(b"hunter2-hunter2", b"secret:1:1")
    assert b"hunter2" not in blob
    assert box.decrypt(key_id, blob, b"secret:1:1") == b"hunter2-hunter2"
    assert box.encrypt(b"hunter2-hunter2", b"secret:1:1")[1] != blob  # a fresh nonce every time
    assert (tmp_path / "secret-keys").stat().st_mode & 0o777 == 0o600


def test_tampering_another_row_or_a_wrong_key_is_an_error(tmp_path: Path) -> None:
    box = SecretBox(FileKeyring(tmp_path / "a"))
    key_id, blob = box.encrypt(b"value", b"secret:1:1")
    flipped = bytes([blob[0]]) + blob[1:20] + bytes([blob[20] ^ 1]) + blob[21:]
    with pytest.raises(SecretKeyError, match="failed authentication"):
        box.decrypt(key_id, flipped, b"secret:1:1")
    with pytest.raises(SecretKeyError, match="failed authentication"):
        box.decrypt(key_id, blob, b"secret:2:1")  # moved to another row
    other = SecretBox(FileKeyring(tmp_path / "b"))
    with pytest.raises(SecretKeyError, match="not in the keyring"):
        other.decrypt(key_id, blob, b"secret:1:1")
    # same id, different key bytes: authentication fails, and the message never holds the value
    doc = json.loads((tmp_path / "b").read_text())
    doc = {"current": key_id, "keys": {key_id: next(iter(doc["keys"].values()))}}
    (tmp_path / "c").write_text(json.dumps(doc))
    (tmp_path / "c").chmod(0o600)
    with pytest.raises(SecretKeyError) as caught:
        SecretBox(FileKeyring(tmp_path / "c")).decrypt(key_id, blob, b"secret:1:1")
    assert "value" not in str(caught.value)


def test_rotation_keeps_old_keys_readable_until_retired(tmp_path: Path) -> None:
    ring = FileKeyring(tmp_path / "keys")
    box = SecretBox(ring)
    old_id, blob = box.encrypt(b"v", b"")
    new_id = ring.begin_rotation()
    assert new_id != old_id
    assert box.keys.current()[0] == new_id
    assert box.decrypt(old_id, blob, b"") == b"v"
    other_process = FileKeyring(tmp_path / "keys")  # reads the file again for an unknown id
    assert other_process.key(new_id) is not None
    assert ring.retire({new_id}) == [old_id]
    with pytest.raises(SecretKeyError):
        box.decrypt(old_id, blob, b"")


def test_a_keyring_readable_by_others_is_refused(tmp_path: Path) -> None:
    FileKeyring(tmp_path / "keys")
    (tmp_path / "keys").chmod(0o644)
    with pytest.raises(SecretKeyError, match="chmod 600"):
        FileKeyring(tmp_path / "keys")


def test_env_keyring_first_key_encrypts_and_rotation_asks_to_drop_the_old(tmp_path: Path) -> None:
    k1, k2 = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    ring = EnvKeyring(f"new={k2},old={k1}")
    assert ring.current()[0] == "new"
    assert ring.begin_rotation() == "new"
    with pytest.raises(Conflict, match="remove old"):
        ring.retire({"new"})
    bare = load_key_provider(tmp_path, {"YUNZHOU_SECRET_KEY": k1})
    assert bare.current()[0].startswith("env-")
    assert not (tmp_path / "secret-keys").exists()
    with pytest.raises(SecretKeyError, match="32 bytes"):
        EnvKeyring(base64.b64encode(b"short").decode())


def test_seal_and_open_are_self_describing(tmp_path: Path) -> None:
    box = SecretBox(FileKeyring(tmp_path / "keys"))
    sealed = box.seal(b"kubeconfig")
    assert sealed.startswith("yz1:")
    assert SecretBox.sealed_key_id(sealed) == box.keys.current()[0]
    assert box.open(sealed) == b"kubeconfig"
    with pytest.raises(SecretKeyError):
        box.open(sealed[:-4] + "AAAA")
