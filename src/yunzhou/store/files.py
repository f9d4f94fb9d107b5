"""Where the store keeps files that are not rows: uploaded source archives, content-addressed."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def artifact_path(data_dir: Path, digest: str) -> Path:
    return data_dir / "artifacts" / "sha256" / f"{digest.removeprefix('sha256:')}.tar.gz"


def incoming_artifacts(data_dir: Path) -> Path:
    """Uploads being received: on the same file system as their final place, so moving one in is atomic."""
    return data_dir / "artifacts" / "incoming"


#: Image content unpacked for containers (build steps' layers and bundles, buildah's storage): its modes
#: are the image's own — a build step runs as a non-root user that must read /usr — and its files hold no
#: secret of the platform; the 0700 data dir already keeps other users out of it.
IMAGE_CONTENT = ("builds/layers", "builds/steps", "buildah")


def keep_private(data_dir: Path) -> int:
    """Make the data dir 0700 and take group/other permissions off everything in it but ``IMAGE_CONTENT``;
    returns how many entries changed. The dir's mode is what keeps app instances (other users) out; the
    files' modes make sure a data dir copied or opened up by hand does not expose the admin token, keys or
    database."""
    data_dir.chmod(0o700)
    changed = 0
    skipped = {os.path.join(data_dir, *name.split("/")) for name in IMAGE_CONTENT}
    for dirpath, dirnames, filenames in os.walk(data_dir):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skipped]
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o077:
                continue
            os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)
            changed += 1
    return changed
