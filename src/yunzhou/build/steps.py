"""Build steps in sandbox containers: the ``StepRunner`` the builder uses on a real machine.

Each step is a one-shot runc container (``sandbox.Runc.run``) on the step's image, whose layers the
``sandbox`` layer cache mounts as a read-only overlay; the source and the host's CA bundle are bound
read-only, the step's output and scratch folders writable. With egress the container gets its own
address on the platform bridge with NAT to the outside (package registries) and the host's resolvers;
without, a network namespace with only loopback. Memory, CPU and pids are limited by the container's
cgroup. Output (stdout and stderr together) reaches the log line by line while the step runs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import resource
import secrets
import shutil
import threading
from pathlib import Path
from typing import Literal, Protocol

from yunzhou.build.model import BuildCancelled, BuildFailed, BuildStep, LogLine
from yunzhou.build.oci import ImageRef, ImageStore
from yunzhou.sandbox import (
    ContainerSpec,
    Mount,
    Network,
    NetworkAttachment,
    Runc,
    SandboxCancelled,
    SandboxError,
    SandboxTimeout,
)

RESOLV_CANDIDATES = (Path("/etc/resolv.conf"), Path("/run/systemd/resolve/resolv.conf"))
PIDS_LIMIT = 4096
NOFILE = 16384  # npm opens many files at once (capped by this process's own hard limit)


class LayerMounts(Protocol):
    """What the builder needs of ``sandbox.LayerCache``: an image's layers as a read-only rootfs."""

    def rootfs(self, store: ImageStore, image: ImageRef, target: Path) -> object: ...

    def release(self, target: Path) -> None: ...


def host_resolv_conf(candidates: tuple[Path, ...] = RESOLV_CANDIDATES) -> str | None:
    """The first resolv.conf whose nameservers are reachable from a container (not loopback), or None."""
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        servers = [line.split()[1] for line in text.splitlines() if line.split()[:1] == ["nameserver"]]
        usable = [s for s in servers if not _loopback(s)]
        if usable:
            return "".join(f"nameserver {s}\n" for s in usable)
    return None


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return True


class SandboxStepRunner:
    """Runs ``BuildStep``s as runc containers. ``work_root`` holds each step's rootfs mount point and bundle
    (removed when the step ends); ``network`` is needed only for steps with egress."""

    def __init__(
        self,
        store: ImageStore,
        layers: LayerMounts,
        runc: Runc,
        work_root: Path,
        network: Network | None = None,
        cgroup_parent: str = "yunzhou-builds",
    ) -> None:
        self.store = store
        self.layers = layers
        self.runc = runc
        self.work_root = work_root
        self.network = network
        self.cgroup_parent = cgroup_parent

    def run(self, step: BuildStep, log: LogLine, *, timeout: float, cancel: threading.Event) -> int:
        container_id = f"yzbuild-{secrets.token_hex(6)}"
        base = self.work_root / container_id
        rootfs, bundle = base / "rootfs", base / "bundle"
        rootfs.mkdir(parents=True)
        attached = False
        try:
            self.layers.rootfs(self.store, step.image, rootfs)
            network: Literal["none"] | NetworkAttachment = "none"
            if step.egress:
                if self.network is None:
                    raise BuildFailed(f"{step.name}: needs network egress, but no sandbox network is set up")
                network = self.network.attach(container_id, egress=True)
                attached = True
            spec = ContainerSpec(
                id=container_id,
                rootfs=rootfs,
                args=step.args,
                env=dict(step.env),
                cwd=step.cwd,
                uid=step.uid,
                gid=step.gid,
                mounts=tuple(
                    Mount(target=target, source=source, readonly=not writable)
                    for target, source, writable in step.mounts
                ),
                memory_limit_bytes=step.memory_limit_bytes,
                cpu_limit_millis=step.cpu_limit_millis,
                cgroups_path=f"{self.cgroup_parent}/{container_id}",
                network=network,
                hostname="build",
                resolv_conf=host_resolv_conf() if step.egress else None,
                pids_limit=PIDS_LIMIT,
                nofile=min(NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE)[1]),
            )
            return self._run_logged(spec, bundle, log, timeout=timeout, cancel=cancel, what=step.name)
        finally:
            if attached and self.network is not None:
                with contextlib.suppress(Exception):
                    self.network.detach(container_id)
            with contextlib.suppress(Exception):
                self.layers.release(rootfs)
            if not os.path.ismount(rootfs):
                shutil.rmtree(base, ignore_errors=True)

    def _run_logged(
        self,
        spec: ContainerSpec,
        bundle: Path,
        log: LogLine,
        *,
        timeout: float,
        cancel: threading.Event,
        what: str,
    ) -> int:
        read_end, write_end = os.pipe()
        reader = threading.Thread(target=_pump, args=(read_end, log), daemon=True)
        reader.start()
        try:
            return self.runc.run(
                spec, bundle, stdout=write_end, stderr=write_end, timeout=timeout, cancel=cancel
            )
        except SandboxCancelled:
            raise BuildCancelled(f"the build was cancelled during {what}") from None
        except SandboxTimeout:
            raise BuildFailed(
                f"{what}: the build's time limit was reached ({timeout:.0f} s were left)"
            ) from None
        except SandboxError as exc:
            raise BuildFailed(f"{what}: the build container did not run: {exc.message}") from None
        finally:
            os.close(write_end)  # the container is gone: the reader sees the end after the last line
            reader.join(timeout=10)


def _pump(fd: int, log: LogLine) -> None:
    with os.fdopen(fd, "rb") as stream:
        for raw in stream:
            log(raw.decode(errors="replace").rstrip("\r\n"))
