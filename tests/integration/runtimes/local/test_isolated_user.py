"""An instance with ``user``: it runs as that uid (no groups, umask 077) with a private HOME, its exec probes
run as it too, and its cgroup still holds it (it joins before exec, after the uid switch)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.runtimes.local.harness import APP, Harness, app_spec, by_id, where
from yunzhou.runtimes.local import LocalSupervisor, Probe, ProcessSpec

UID = 2_123_456_789  # in the isolation range, in no /etc/passwd


@pytest.fixture
def homes() -> Iterator[Path]:
    """A parent other users may pass through (pytest's tmp dirs are 0700), as the instance root is."""
    top = Path(tempfile.mkdtemp(prefix="yz-homes-", dir="/tmp"))
    top.chmod(0o711)
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def isolated(spec: ProcessSpec, home: Path, mode: str) -> ProcessSpec:
    # python3 from PATH: the test's own interpreter may live where an unprivileged user cannot go
    return dataclasses.replace(spec, argv=("python3", "-u", str(APP), mode), user=UID, home=home)


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def test_instance_runs_as_its_user_with_a_private_home_and_probes_as_it(
    harness: Harness, tmp_path: Path, homes: Path
) -> None:
    home = homes / "web-1"
    probe = Probe(
        "exec", argv=("python3", "-c", f"import os, sys; sys.exit(os.getuid() != {UID})"), period=0.1
    )
    spec = isolated(app_spec("web-1", cwd=tmp_path, readiness=probe), home, "serve")
    harness.supervisor.ensure(spec)
    status = by_id(harness.wait(where("web-1", lambda s: s.ready), 20), "web-1")
    assert status is not None
    assert status.pid is not None
    info = proc_status(status.pid)
    assert info["Uid"].split() == [str(UID)] * 4
    assert info["Gid"].split() == [str(UID)] * 4
    assert info["Groups"] == ""
    assert info["Umask"] == "0077"
    st = home.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (UID, UID, 0o700)
    environ = Path(f"/proc/{status.pid}/environ").read_bytes().split(b"\0")
    assert f"HOME={home}".encode() in environ
    assert f"TMPDIR={home}".encode() in environ

    harness.supervisor.stop("web-1", grace=5)
    harness.wait(where("web-1", lambda s: s.state == "stopped"), 20)
    assert not home.exists()  # removed with the instance


def test_an_isolated_instance_is_still_held_by_its_cgroup(
    harness: Harness, tmp_path: Path, homes: Path
) -> None:
    supported, why = LocalSupervisor.cgroup_support()
    assert supported, why
    spec = app_spec("hog", "hog", cwd=tmp_path, memory_limit_bytes=64 * 1024 * 1024, cpu_limit_millis=500)
    harness.supervisor.ensure(isolated(spec, homes / "hog", "hog"))
    status = by_id(harness.wait(where("hog", lambda s: s.last_exit == "OOMKilled"), 30), "hog")
    assert status is not None
    assert "cgroups unavailable" not in status.reason


def test_user_and_home_go_together(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="user and home"):
        dataclasses.replace(app_spec("x", cwd=tmp_path), user=UID)
    assert os.geteuid() == 0, "these tests switch users: run them as root (as CI does)"
