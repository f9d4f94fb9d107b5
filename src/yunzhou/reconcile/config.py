"""Resolve a release's recorded config into Score resource outputs: plain variables as recorded, secrets
decrypted from the exact versions the release names. The values go into ``AppIntent.resource_outputs``
(kept out of every repr) and nowhere else."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yunzhou.domain.config import CONFIG_TYPE, SECRET_TYPE
from yunzhou.store.crypto import SecretBox, SecretKeyError
from yunzhou.store.models import Secret, SecretVersion


def _aad(secret_id: int, version: int) -> bytes:
    return f"secret:{secret_id}:{version}".encode()  # the same binding services.config writes


def resource_outputs(
    s: Session, box: SecretBox | None, environment_id: int, app: str, score: Mapping[str, Any],
    config: Mapping[str, Any] | None,
) -> dict[str, dict[str, str]]:  # fmt: skip
    """Outputs for every ``environment`` and ``secret`` resource of ``score``; raises SecretKeyError
    (naming the secret, never its value) when a recorded version cannot be decrypted."""
    config = config or {}
    resources = score.get("resources") or {}
    kinds = {name: r.get("type") for name, r in resources.items() if isinstance(r, Mapping)}
    vars_ = {str(k): str(v) for k, v in (config.get("vars") or {}).items()}
    secrets: dict[str, str] = {}
    refs: Mapping[str, Any] = config.get("secrets") or {}
    if refs and box is None:
        raise SecretKeyError("this control plane has no secret key, so it cannot decrypt secrets")
    for name, ref in sorted(refs.items()):
        scope = app if ref.get("scope") == "app" else ""
        version = int(ref["version"])
        row = s.execute(
            select(Secret.id, SecretVersion.key_id, SecretVersion.ciphertext)
            .join(SecretVersion, SecretVersion.secret_id == Secret.id)
            .where(
                Secret.environment_id == environment_id,
                Secret.app == scope,
                Secret.name == name,
                SecretVersion.version == version,
            )
        ).one_or_none()
        if row is None:
            raise SecretKeyError(f"secret {name} version {version} no longer exists")
        assert box is not None
        secrets[name] = box.decrypt(row.key_id, row.ciphertext, _aad(row.id, version)).decode()
    out: dict[str, dict[str, str]] = {}
    for name, kind in kinds.items():
        if kind == CONFIG_TYPE:
            out[name] = dict(vars_)
        elif kind == SECRET_TYPE:
            out[name] = dict(secrets)
    return out
