"""Real runc containers from a tiny rootfs made of Debian's static busybox (package ``busybox-static``).

Every test gets its own runc state root and its own cgroup parent; teardown proves that no container,
cgroup or mount is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from yunzhou.sandbox import ContainerSpec, Network, Runc
from yunzhou.sandbox.network import names_for

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "cat", "id", "ps", "ls", "touch", "echo", "grep", "nc", "httpd", "wget", "sleep", "head")
APPLETS += ("tail", "unshare", "ip", "true", "mkdir", "linux32", "dd", "printf", "wc", "ping")
UID = 2_000_000_123
CGROUP_ROOT = Path("/sys/fs/cgroup")


def make_busybox_tree(root: Path) -> Path:
    """``root`` as a minimal image tree: /bin/busybox with applet links and the usual empty mount points."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    for d in ("proc", "dev", "sys", "etc", "www", "root"):
        (root / d).mkdir()
    (root / "tmp").mkdir(mode=0o1777)
    (root / "tmp").chmod(0o1777)  # runc gives the tmpfs the mode of the directory it covers
    (root / "etc" / "hosts").write_text("")
    (root / "etc" / "resolv.conf").write_text("")
    (root / "etc" / "passwd").write_text(f"root:x:0:0::/root:/bin/sh\napp:x:{UID}:{UID}::/tmp:/bin/sh\n")
    (root / "www" / "index.html").write_text("hello from the sandbox\n")
    return root


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_tree(tmp_path_factory.mktemp("busybox") / "rootfs")


def _cgroup_dirs(parent: str) -> list[Path]:
    return [d / parent for d in CGROUP_ROOT.iterdir() if (d / parent).is_dir()]


@dataclass
class Sandbox:
    """A runc state root and a cgroup parent of one test; ``spec`` fills in the defaults."""

    runc: Runc
    rootfs: Path
    bundles: Path
    cgroup_parent: str
    ids: list[str] = field(default_factory=list)
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spec(self, name: str, *args: str, **changes: Any) -> ContainerSpec:
        container_id = f"yzt-{os.getpid()}-{name}"
        self.ids.append(container_id)
        base: dict[str, Any] = {
            "id": container_id,
            "rootfs": self.rootfs,
            "args": args,
            "uid": UID,
            "gid": UID,
            "cgroups_path": f"/{self.cgroup_parent}/{container_id}",
        }
        return ContainerSpec(**(base | changes))

    def bundle(self, spec: ContainerSpec) -> Path:
        return self.bundles / spec.id

    def run(self, spec: ContainerSpec, **kwargs: Any) -> tuple[int, str]:
        """Run to completion; (exit code, stdout + stderr)."""
        out = self.bundle(spec).parent / f"{spec.id}.out"
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("wb") as fh:
            code = self.runc.run(spec, self.bundle(spec), stdout=fh, stderr=fh, **kwargs)
        return code, out.read_text()

    def start(self, spec: ContainerSpec) -> subprocess.Popen[bytes]:
        """Spawn a long-running container (output to ``<bundles>/<id>.out``) and wait until it runs."""
        out = self.bundles / f"{spec.id}.out"
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("wb") as fh:
            child = self.runc.spawn(spec, self.bundle(spec), fh, fh)
        self.children[spec.id] = child
        deadline = time.monotonic() + 30
        while (state := self.runc.state(spec.id)) is None or state.status != "running":
            assert child.poll() is None, out.read_text()
            assert time.monotonic() < deadline, "container never ran"
            time.sleep(0.01)
        return child

    def stop_all(self) -> None:
        """SIGKILL every container still running (through runc) and reap the runc children."""
        for state in self.runc.list():
            with contextlib.suppress(Exception):
                self.runc.kill(state.id, signal.SIGKILL)
        for child in self.children.values():
            child.wait(timeout=30)


@pytest.fixture
def sandbox(tmp_path: Path, busybox_rootfs: Path) -> Iterator[Sandbox]:
    parent = f"yunzhou-test-{os.getpid()}-{tmp_path.name}"
    box = Sandbox(Runc(tmp_path / "runc-state"), busybox_rootfs, tmp_path / "bundles", parent)
    try:
        yield box
    finally:
        box.stop_all()
        left = box.runc.list()
        for state in left:
            box.runc.delete(state.id, force=True)
        for d in _cgroup_dirs(parent):
            d.rmdir()  # fails (and so fails the test) if runc left a container's group inside
        assert left == [], "containers outlived their test"


def leftovers(container_id: str, ip: str | None) -> list[str]:
    """What of an attachment is still on the machine (netns, veth, iptables rules naming its address)."""
    netns, host_end, _ = names_for(container_id)
    found = []
    if Path("/run/netns", netns).exists():
        found.append(f"netns {netns}")
    if Path("/sys/class/net", host_end).exists():
        found.append(f"link {host_end}")
    rules = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True).stdout
    rules += subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    found += [line for line in rules.splitlines() if (ip and f"{ip}/32" in line) or netns in line]
    return found


@dataclass
class Attachments:
    network: Network
    made: dict[str, str | None] = field(default_factory=dict)
    ports: list[int] = field(default_factory=list)

    def attach(self, container_id: str, *, egress: bool = False) -> Any:
        self.made[container_id] = None
        attachment = self.network.attach(container_id, egress=egress)
        self.made[container_id] = attachment.ip
        return attachment

    def allow(self, port: int) -> None:
        self.ports.append(port)
        self.network.allow_host_port(port)


@pytest.fixture
def network(sandbox: Sandbox) -> Iterator[Attachments]:
    """The shared bridge; every attachment and allowed port of the test is removed and proved gone."""
    made = Attachments(Network())
    try:
        yield made
    finally:
        sandbox.stop_all()
        for container_id in made.made:
            made.network.detach(container_id)
        for port in made.ports:
            made.network.disallow_host_port(port)
        assert set(made.made).isdisjoint(made.network.attachments())
        assert set(made.ports).isdisjoint(made.network.allowed_host_ports())
        for container_id, ip in made.made.items():
            assert leftovers(container_id, ip) == []
