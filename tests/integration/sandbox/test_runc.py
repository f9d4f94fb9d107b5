"""Runc with real containers: who runs, what it may touch, what it sees, and that it stops when told."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from tests.integration.sandbox.conftest import UID, Sandbox
from yunzhou.domain.errors import NotFound
from yunzhou.sandbox import SandboxCancelled, SandboxError, SandboxTimeout


def test_runs_as_the_given_non_root_uid_with_no_supplementary_groups(sandbox: Sandbox) -> None:
    code, out = sandbox.run(sandbox.spec("uid", "sh", "-c", "id; grep ^Groups: /proc/self/status"))
    assert code == 0
    assert out.split("\n")[0] == f"uid={UID}(app) gid={UID}"
    assert out.split("\n")[1].split() == ["Groups:"]


def test_root_is_read_only_but_tmp_is_writable(sandbox: Sandbox) -> None:
    script = "touch /bin/x; echo root=$?; touch /tmp/x && echo tmp=$?; ls -ld /tmp"
    code, out = sandbox.run(sandbox.spec("ro", "sh", "-c", script))
    assert code == 0
    assert "Read-only file system" in out
    assert "root=1" in out
    assert "tmp=0" in out
    assert "drwxrwxrwt" in out


def test_no_capabilities_no_new_privileges_and_seccomp_filtering(sandbox: Sandbox) -> None:
    code, out = sandbox.run(
        sandbox.spec("caps", "grep", "-E", "^(Cap|NoNewPrivs|Seccomp:)", "/proc/self/status")
    )
    assert code == 0
    fields = dict(line.split(":\t") for line in out.strip().splitlines())
    for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert fields[name] == "0000000000000000", name
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"  # a filter is installed


def test_seccomp_denies_a_user_namespace_that_is_otherwise_allowed(sandbox: Sandbox) -> None:
    # without the profile an unprivileged user may create a user namespace (the start of many exploits)
    code, out = sandbox.run(sandbox.spec("userns-off", "unshare", "-U", "true", seccomp=False))
    assert (code, out) == (0, "")
    code, out = sandbox.run(sandbox.spec("userns-on", "unshare", "-U", "true"))
    assert code != 0
    assert "Operation not permitted" in out


def test_seccomp_personality_rules_leave_the_safe_values_allowed(sandbox: Sandbox) -> None:
    code, out = sandbox.run(sandbox.spec("personality", "linux32", "true"))
    assert (code, out) == (0, "")


def test_cannot_see_host_processes(sandbox: Sandbox) -> None:
    code, out = sandbox.run(sandbox.spec("ps", "ps", "-o", "pid,comm"))
    assert code == 0
    assert [line.split() for line in out.strip().splitlines()] == [["PID", "COMMAND"], ["1", "ps"]]


def test_sees_its_own_hosts_file_and_hostname(sandbox: Sandbox) -> None:
    spec = sandbox.spec("hosts", "cat", "/etc/hosts", hosts={"orders.shop": "10.213.0.1"}, hostname="web")
    code, out = sandbox.run(spec)
    assert code == 0
    assert "127.0.1.1\tweb\n" in out
    assert "10.213.0.1\torders.shop\n" in out


def test_memory_limit_kills_a_hog(sandbox: Sandbox, tmp_path: Path) -> None:
    # `tail` of an endless line buffers it all: memory grows until the kernel kills it
    code, _ = sandbox.run(sandbox.spec("hog", "tail", "/dev/zero", memory_limit_bytes=32 << 20), timeout=120)
    assert code == 137  # 128 + SIGKILL


def test_an_oom_kill_is_counted_in_the_containers_cgroup(sandbox: Sandbox, tmp_path: Path) -> None:
    script = "tail /dev/zero; echo tail=$?; sleep 600"
    spec = sandbox.spec("hog2", "sh", "-c", script, memory_limit_bytes=32 << 20)
    out = tmp_path / "hog2.out"
    with out.open("wb") as fh:
        child = sandbox.runc.spawn(spec, sandbox.bundle(spec), fh, fh)
    try:
        deadline = time.monotonic() + 120
        while "tail=" not in out.read_text():
            assert time.monotonic() < deadline, out.read_text()
            assert child.poll() is None, out.read_text()
            time.sleep(0.05)
        assert "tail=137" in out.read_text()
        oom_control = Path(
            "/sys/fs/cgroup/memory", (spec.cgroups_path or "").lstrip("/"), "memory.oom_control"
        )
        oom = dict(line.split() for line in oom_control.read_text().splitlines())
        assert int(oom["oom_kill"]) == 1
    finally:
        sandbox.runc.kill(spec.id, signal.SIGKILL)
        child.wait(timeout=30)


def test_pids_limit_bounds_forks(sandbox: Sandbox) -> None:
    script = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done; wait"
    _, out = sandbox.run(sandbox.spec("pids", "sh", "-c", script, pids_limit=4), timeout=60)
    assert "can't fork" in out or "Resource temporarily unavailable" in out


def test_timeout_kills_and_deletes(sandbox: Sandbox) -> None:
    spec = sandbox.spec("slow", "sleep", "600")
    started = time.monotonic()
    with pytest.raises(SandboxTimeout, match="time limit of 1 s"):
        sandbox.run(spec, timeout=1)
    assert time.monotonic() - started < 30
    assert sandbox.runc.state(spec.id) is None


def test_cancel_kills_and_deletes(sandbox: Sandbox) -> None:
    spec = sandbox.spec("cancelled", "sleep", "600")
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    try:
        with pytest.raises(SandboxCancelled, match="cancelled"):
            sandbox.run(spec, cancel=cancel, timeout=120)
    finally:
        timer.cancel()
    assert sandbox.runc.state(spec.id) is None


def test_a_container_runc_cannot_start_says_why(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError, match="/no/such/program"):
        sandbox.run(sandbox.spec("missing", "/no/such/program"))


def test_spawn_exec_kill_delete_list(sandbox: Sandbox, tmp_path: Path) -> None:
    # pid 1 only gets the signals it handles: the shell exits 143 on TERM (plain `sleep` would ignore it)
    spec = sandbox.spec("long", "sh", "-c", "trap 'exit 143' TERM; sleep 600 & wait")
    with (tmp_path / "long.out").open("wb") as out:
        child = sandbox.runc.spawn(spec, sandbox.bundle(spec), out, out)
    try:
        deadline = time.monotonic() + 30
        while (state := sandbox.runc.state(spec.id)) is None or state.status != "running":
            assert time.monotonic() < deadline, "container never ran"
            time.sleep(0.02)
        assert [s.id for s in sandbox.runc.list()] == [spec.id]
        assert sandbox.runc.exec(spec.id, ["id", "-u"]) == (0, f"{UID}\n")
        assert sandbox.runc.exec(spec.id, ["sh", "-c", "echo $GREETING"], {"GREETING": "hi"}) == (0, "hi\n")
        with pytest.raises(SandboxTimeout):
            sandbox.runc.exec(spec.id, ["sleep", "600"], timeout=0.5)
        sandbox.runc.kill(spec.id, signal.SIGTERM)
        assert child.wait(timeout=30) == 143
    finally:
        if child.poll() is None:
            sandbox.runc.kill(spec.id, signal.SIGKILL)
            child.wait(timeout=30)
    sandbox.runc.delete(spec.id, force=True)
    assert sandbox.runc.list() == []


def test_unknown_containers_are_not_found(sandbox: Sandbox) -> None:
    assert sandbox.runc.state("nope") is None
    with pytest.raises(NotFound, match="nope"):
        sandbox.runc.kill("nope")
    with pytest.raises(NotFound):
        sandbox.runc.exec("nope", ["true"])
