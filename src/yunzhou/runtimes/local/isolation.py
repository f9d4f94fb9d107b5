"""Instances as unprivileged users of their own: a uid per app, and the only files that uid can reach.

Each app (``project/env/app``) gets a uid (= its gid) from ``[2_000_000_000, 2**31 - 1)``, derived
from a hash of the data dir and the address, checked against ``/etc/passwd``/``/etc/group`` and against
the other apps of this data dir (``<data dir>/instance-uids.json``): two apps never share one. Replicas
of one app share it (they run the same code with the same environment).

What such a uid can reach lives under the *instance root* (not the data dir, which stays 0700 with the
admin token, the keyring, the database, the logs and the router's files)::

    <instance root>/                root 0711   ($YUNZHOU_INSTANCE_ROOT or /var/lib/yunzhou-instances,
                                                 then /<data dir hash>)
      <uid>/                        root:<uid> 0750   only this app (and root) may enter
        releases/<sha256>/          root:<uid> 0750 dirs, 0440/0550 files: the release, read-only
        homes/<instance id>/        <uid>:<uid> 0700   HOME and TMPDIR, removed when it stops
        volumes/<name>/             <uid>:<uid> 0700   a Score volume of a container (kept until the app goes)
      bundles/<instance id>/        root 0700          a container's runc bundle (containers.py)
      layers/                       root               image layers unpacked once, shared (sandbox.LayerCache)

At every start and stop everything but ``layers`` and the apps' ``volumes`` is removed.
"""

from __future__ import annotations

import grp
import hashlib
import json
import logging
import os
import pwd
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("yunzhou.runtimes.local")

UID_BASE = 2_000_000_000
# below 2**31 - 1: runc refuses larger uids and gids ("nobody" on some systems is 65534)
UID_SPAN = 2**31 - 1 - UID_BASE
ENV_ISOLATE = "YUNZHOU_ISOLATE_INSTANCES"
ENV_INSTANCE_ROOT = "YUNZHOU_INSTANCE_ROOT"
DEFAULT_INSTANCE_ROOT = Path("/var/lib/yunzhou-instances")
UID_TABLE = "instance-uids.json"


def _taken_by_system(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        pass
    else:
        return True
    try:
        grp.getgrgid(uid)
    except KeyError:
        return False
    return True


def _untraversable(path: Path) -> Path | None:
    """The first directory on the way to ``path`` that other users may not pass through, if any."""
    for part in [*reversed(path.parents), path]:
        try:
            mode = part.stat().st_mode
        except FileNotFoundError:
            return None  # created by us below, 0711
        if not mode & stat.S_IXOTH:
            return part
    return None


@dataclass
class Isolation:
    """Where and as whom instances run. ``enabled`` False: as the control plane's user (``note`` says why)."""

    enabled: bool
    note: str
    data_dir: Path
    root: Path | None = None
    _uids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_env(cls, data_dir: Path, env: Mapping[str, str]) -> Isolation:
        scope = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
        if env.get(ENV_ISOLATE, "1").strip().lower() in ("0", "false", "no", "off"):
            note = f"disabled by {ENV_ISOLATE}=0: instances run as the control plane's user"
            return cls(False, note, data_dir)
        if os.geteuid() != 0:
            return cls(
                False,
                f"not running as root: instances run as uid {os.geteuid()} like the control plane and can"
                " read its files"
                " (run the server as root to give each app a user of its own)",
                data_dir,
            )
        # always a directory of our own below the configured one: it is removed at every start and stop
        root = Path(env.get(ENV_INSTANCE_ROOT) or DEFAULT_INSTANCE_ROOT).resolve() / scope
        blocked = _untraversable(root.parent)
        if blocked is not None:
            raise RuntimeError(
                f"instance root {root} ({ENV_INSTANCE_ROOT}): other users cannot pass through {blocked}, so"
                " instances could not reach their files; choose a directory below world-traversable parents"
            )
        return cls(True, f"instances run as a user of their own per app, files under {root}", data_dir, root)

    # ---- uids ------------------------------------------------------------------------------------------
    def uid_for(self, address: str) -> int | None:
        """This app's uid (stable across restarts), or None when isolation is off."""
        if not self.enabled:
            return None
        if not self._uids:
            self._uids = self._load()
        known = self._uids.get(address)
        if known is not None and UID_BASE <= known < UID_BASE + UID_SPAN:
            return known  # (one outside: given by an older version, which used up to 4e9; a new one now)
        taken = set(self._uids.values())
        seed = int.from_bytes(hashlib.sha256(f"{self.data_dir.resolve()}\0{address}".encode()).digest()[:8])
        uid = UID_BASE + seed % UID_SPAN
        while uid in taken or _taken_by_system(uid):  # a collision: the next free one
            uid = UID_BASE + (uid - UID_BASE + 1) % UID_SPAN
        self._uids[address] = uid
        self._save()
        return uid

    def _load(self) -> dict[str, int]:
        try:
            raw = json.loads((self.data_dir / UID_TABLE).read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def _save(self) -> None:
        path = self.data_dir / UID_TABLE
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self._uids, fh, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)

    # ---- the instance root -----------------------------------------------------------------------------
    def app_dir(self, uid: int) -> Path:
        """``<root>/<uid>`` (created root:<uid> 0750, with ``releases`` and ``homes`` the same)."""
        assert self.root is not None
        top = self.root / str(uid)
        if not self.root.parent.exists():
            self.root.parent.mkdir(parents=True, exist_ok=True)
            _make_dir(self.root.parent, 0, 0, 0o711)
        _make_dir(self.root, 0, 0, 0o711)
        for d in (top, top / "releases", top / "homes"):
            _make_dir(d, 0, uid, 0o750)
        return top

    def release_root(self, uid: int) -> Path:
        return self.app_dir(uid) / "releases"

    def home(self, uid: int, instance_id: str) -> Path:
        """Where this instance's HOME goes; the supervisor creates it (owned by the uid) and removes it."""
        return self.app_dir(uid) / "homes" / instance_id

    def forget_app(self, address: str) -> None:
        """The app is gone: remove its releases and homes (a later app of the same name gets the uid)."""
        if not self.enabled or self.root is None:
            return
        if not self._uids:
            self._uids = self._load()
        uid = self._uids.get(address)
        if uid is not None:
            shutil.rmtree(self.root / str(uid), ignore_errors=True)

    def remove_all(self) -> None:
        """On start and shutdown: everything under the root is rebuilt from the artifacts at the next
        start, except the unpacked image layers (a cache) and the apps' volumes (their data)."""
        if self.root is None or not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if entry.name == KEEP_LAYERS:
                continue
            if entry.name.isdigit() and (entry / KEEP_VOLUMES).is_dir():
                for inner in entry.iterdir():
                    if inner.name != KEEP_VOLUMES:
                        _remove(inner)
                continue
            _remove(entry)


KEEP_LAYERS = "layers"
KEEP_VOLUMES = "volumes"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink() and not os.path.ismount(path):
        shutil.rmtree(path, ignore_errors=True)
    elif not path.is_dir():
        path.unlink(missing_ok=True)


def _make_dir(path: Path, uid: int, gid: int, mode: int) -> None:
    path.mkdir(mode=0o700, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeError(f"{path} is not a directory")
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(path, uid, gid, follow_symlinks=False)
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)


def popen_identity(uid: int | None) -> dict[str, object]:
    """``subprocess.Popen`` arguments: run as ``uid`` (gid = uid, no other groups, umask 077)."""
    if uid is None:
        return {}
    return {"user": uid, "group": uid, "extra_groups": [], "umask": 0o077}
