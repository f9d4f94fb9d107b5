"""Where the store keeps files that are not rows: uploaded source archives, content-addressed."""

from __future__ import annotations

from pathlib import Path


def artifact_path(data_dir: Path, digest: str) -> Path:
    return data_dir / "artifacts" / "sha256" / f"{digest.removeprefix('sha256:')}.tar.gz"


def incoming_artifacts(data_dir: Path) -> Path:
    """Uploads being received: on the same file system as their final place, so moving one in is atomic."""
    return data_dir / "artifacts" / "incoming"
