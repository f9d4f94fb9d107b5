"""Instances as runc containers (the default instance mode): image → rootfs, bundle, network, runc.

What one instance gets (see docs/local-runtime.md, "What an instance sees")::

    <instance root>/bundles/<instance id>/    root 0700: config.json, hosts, resolv.conf, runc.log,
                                              files/<n> (Score files, bind-mounted read-only),
                                              rootfs/ (the image's layers, a read-only overlay)
    <instance root>/<uid>/volumes/<name>/     the app's uid 0700: a Score volume (read-write)
    /run/yunzhou/runc/<scope>/                runc's state root (tmpfs: gone with its containers on reboot)

Its own network namespace on the shared bridge (``sandbox.Network``): the router reaches it at its address;
it reaches the router (and through it, other apps) at the bridge's gateway address, where the names of
the routes resolve (``/etc/hosts``).

A stopped container is kept (``runc run --keep``) until its exit has been described (the OOM-kill counter
lives in its cgroup), then deleted; the rootfs, network and bundle go when the instance stops for good.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from yunzhou.build.oci import ImageStore
from yunzhou.domain.errors import NotFound, PermanentError, YunzhouError
from yunzhou.sandbox import ContainerSpec, Mount, NetworkAttachment
from yunzhou.sandbox.bundle import HOSTS_FILE, INIT_MOUNT_POINT
from yunzhou.sandbox.network import Network
from yunzhou.sandbox.runc import Runc

from .spec import ProcessSpec, VolumeMount

MODE_VARIABLE = "YUNZHOU_INSTANCE_MODE"
InstanceMode = Literal["container", "process"]
RUNC_STATE = Path("/run/yunzhou/runc")
#: pid 1 of every container when present: forwards SIGTERM to the app and reaps zombies (an app as pid 1
#: of its namespace would ignore a SIGTERM it installed no handler for, and only stop at SIGKILL)
INIT_BINARY = Path("/usr/bin/tini-static")


def instance_mode(environ: Mapping[str, str]) -> InstanceMode:
    """``YUNZHOU_INSTANCE_MODE``: ``container`` (default) or ``process`` (development); else ValueError."""
    value = environ.get(MODE_VARIABLE, "").strip().lower() or "container"
    if value not in ("container", "process"):
        raise ValueError(f"{MODE_VARIABLE}={value!r}: use container (the default) or process (development)")
    return "container" if value == "container" else "process"


def image_digest(image: str) -> str:
    """``project/app@sha256:<hex>`` → ``sha256:<hex>``; PermanentError for a reference not pinned."""
    _, at, digest = image.rpartition("@")
    if not at or not digest.startswith("sha256:"):
        raise PermanentError(f"image {image!r} is not pinned to a digest (name@sha256:…)")
    return digest


def _resolv_conf() -> str | None:
    """The host's resolvers an instance can use (a loopback resolver is not reachable from its netns)."""
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        return None
    kept = []
    for line in lines:
        parts = line.split()
        if parts[:1] == ["nameserver"] and len(parts) > 1:
            with contextlib.suppress(ValueError):
                if ipaddress.ip_address(parts[1].split("%")[0]).is_loopback:
                    continue
        kept.append(line)
    return "\n".join(kept) + "\n" if any(x.startswith("nameserver") for x in kept) else None


def _mount_points(top: Path, files: list[str], volumes: Iterable[VolumeMount]) -> Path | None:
    """A directory laid over the image holding the targets of the Score's mounts (runc cannot create them
    in a read-only root); None when there are none."""
    if not files and not volumes:
        return None
    shutil.rmtree(top, ignore_errors=True)
    top.mkdir(mode=0o755)
    for target in files:
        path = top / target.lstrip("/")
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.write_text("")
    for v in volumes:
        (top / v.target.lstrip("/")).mkdir(mode=0o755, parents=True, exist_ok=True)
    for d in [top, *top.rglob("*")]:  # parents made by mkdir(parents=True) follow the umask
        d.chmod(0o755 if d.is_dir() else 0o444)
    return top


class ContainerHost:
    """The machine side of container instances, shared by the runtime (reconcile thread) and the
    supervisor (its loop thread): every method is thread-safe."""

    def __init__(
        self,
        instance_root: Path,
        store: ImageStore,
        layers: Any,  # sandbox.LayerCache: rootfs(store, image, target) / release(target)
        *,
        network: Network | None = None,
        runc: Runc | None = None,
        scope: str = "default",
        pull: Callable[[str, str], object] | None = None,
    ) -> None:
        self.instance_root = instance_root
        self.store = store
        self.layers = layers
        self.network = network or Network()
        self.runc = runc or Runc(RUNC_STATE / scope)
        # (repository, digest) → the image fetched into ``store`` from the platform's registry
        self.pull = pull
        self.init = INIT_BINARY if INIT_BINARY.exists() else None
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}  # route host → the router's bridge address
        self._attachments: dict[str, NetworkAttachment] = {}  # instance id → its place on the bridge
        self._resolv = _resolv_conf()

    @property
    def gateway(self) -> str:
        """The bridge address of the host: where instances reach the router."""
        return self.network.gateway

    # ---- for the runtime -------------------------------------------------------------------------------
    def image_config(self, image: str) -> dict[str, Any]:
        """The OCI config document of a pinned image in the server's store."""
        digest = image_digest(image)
        if not self.store.has(digest) and self.pull is not None:
            self.pull(image.rpartition("@")[0], digest)  # a TemporaryError (registry down) is retried
        if not self.store.has(digest):
            raise PermanentError(f"image {image} is not in the server's image store ({self.store.root})")
        return self.store.config(digest)

    def attach(self, instance_id: str, *, egress: bool) -> str:
        """The instance's address on the bridge (its netns is made now; ``release`` removes it); with
        ``egress`` it may reach the outside through NAT (the environment's policy). Its bundle directory
        is made first, so ``cleanup_leftovers`` finds it even if the instance never started."""
        self._bundle(instance_id)
        attachment = self.network.attach(instance_id, egress=egress)
        with self._lock:
            self._attachments[instance_id] = attachment
        return attachment.ip

    def set_names(self, hosts: Iterable[str]) -> None:
        """The route hosts instances resolve to the router; live instances' ``/etc/hosts`` follow."""
        names = {h: self.gateway for h in sorted(set(hosts)) if h and "*" not in h}
        with self._lock:
            if names == self._names:
                return
            self._names = names
            bundles = [p for p in self._bundles().iterdir() if (p / HOSTS_FILE).exists()]
        for bundle in bundles:
            with contextlib.suppress(OSError):
                self._rewrite_hosts(bundle)

    # ---- for the supervisor ----------------------------------------------------------------------------
    def prepare(self, spec: ProcessSpec, cgroups_path: str | None) -> tuple[ContainerSpec, Path]:
        """The rootfs (mounted once per instance), files, volumes and network of the instance's container;
        what ``start`` runs. Removes what a previous run of the same instance left in runc."""
        plan = spec.container
        assert plan is not None
        assert spec.user is not None
        bundle = self._bundle(spec.instance_id)
        rootfs = bundle / "rootfs"
        if not os.path.ismount(rootfs):
            rootfs.mkdir(exist_ok=True)
            top = _mount_points(bundle / "mount-points", [f.target for f in plan.files], plan.volumes)
            self.layers.rootfs(self.store, self.store.image(image_digest(plan.image)), rootfs, top=top)
        mounts = [*self._files(spec, bundle), *self._volumes(spec)]
        argv = spec.argv
        if self.init is not None:
            mounts.append(Mount(INIT_MOUNT_POINT, self.init))
            argv = (INIT_MOUNT_POINT, "-g", "--", *argv)
        with self._lock:  # made by attach (the bridge's commands cost ~0.1 s on a busy machine)
            attachment = self._attachments.get(spec.instance_id)
        if attachment is None or attachment.egress != plan.egress:
            attachment = self.network.attach(spec.instance_id, egress=plan.egress)
        with self._lock:
            hosts = dict(self._names)
        container = ContainerSpec(
            id=spec.instance_id,
            rootfs=rootfs,
            args=argv,
            env=spec.child_env(),
            cwd=plan.cwd,
            uid=spec.user,
            gid=spec.user,
            mounts=tuple(mounts),
            memory_limit_bytes=spec.memory_limit_bytes,
            cpu_limit_millis=spec.cpu_limit_millis,
            cgroups_path=cgroups_path,
            network=attachment,
            hosts=hosts,
            resolv_conf=self._resolv,
        )
        if (self.runc.state_root / spec.instance_id).exists():  # what a previous run of it left
            self.delete(spec.instance_id)
        return container, bundle

    def start(self, prepared: tuple[ContainerSpec, Path], **popen: Any) -> subprocess.Popen[bytes]:
        """A foreground ``runc run --keep`` of a prepared container, stdout and stderr piped."""
        container, bundle = prepared
        return self.runc.spawn(container, bundle, subprocess.PIPE, subprocess.PIPE, keep=True, **popen)

    def kill(self, instance_id: str, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(NotFound, YunzhouError):
            self.runc.kill(instance_id, sig)

    def exec(
        self, instance_id: str, argv: tuple[str, ...], env: Mapping[str, str], timeout: float
    ) -> tuple[int, str]:
        """Run an exec probe in the instance (its user, namespaces and limits)."""
        return self.runc.exec(instance_id, argv, env=env, timeout=timeout)

    def start_failure(self, instance_id: str) -> str:
        """runc's own error when the container could not start ("" when it started)."""
        return self.runc.start_failure(self._bundle(instance_id))

    def delete(self, instance_id: str) -> None:
        """Remove the (exited) container and its cgroup; the rootfs and network stay for a restart."""
        with contextlib.suppress(NotFound, YunzhouError):
            self.runc.delete(instance_id, force=True)

    def release(self, instance_id: str) -> None:
        """The instance stopped for good: container, rootfs, network and bundle go."""
        self.delete(instance_id)
        bundle = self._bundles() / instance_id
        rootfs = bundle / "rootfs"
        if os.path.ismount(rootfs):
            self.layers.release(rootfs)
        with self._lock:
            self._attachments.pop(instance_id, None)
        with contextlib.suppress(YunzhouError):
            self.network.detach(instance_id)
        if not os.path.ismount(rootfs):
            shutil.rmtree(bundle, ignore_errors=True)

    def cleanup_leftovers(self) -> list[str]:
        """After a control-plane restart: kill and remove every container of this server's state root
        (their logs went to the dead supervisor; the reconciler starts fresh instances), with their
        rootfs, network and bundle. Returns the container ids removed."""
        removed = []
        try:
            states = self.runc.list()
        except YunzhouError:
            states = []
        ids = {s.id for s in states}
        with contextlib.suppress(OSError):
            ids |= {p.name for p in self._bundles().iterdir() if p.is_dir()}
        for container_id in sorted(ids):
            self.kill(container_id)
            self.release(container_id)
            removed.append(container_id)
        return removed

    # ---- pieces ----------------------------------------------------------------------------------------
    def _bundles(self) -> Path:
        path = self.instance_root / "bundles"
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def _bundle(self, instance_id: str) -> Path:
        path = self._bundles() / instance_id
        path.mkdir(exist_ok=True, mode=0o700)
        return path

    def _files(self, spec: ProcessSpec, bundle: Path) -> list[Mount]:
        """Score files: written into the bundle, owned by the app's uid, mounted read-only."""
        assert spec.container is not None
        assert spec.user is not None
        folder = bundle / "files"
        folder.mkdir(exist_ok=True, mode=0o700)
        mounts = []
        for i, f in enumerate(spec.container.files):
            path = folder / str(i)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(f.content)
            os.chown(path, spec.user, spec.user)
            os.chmod(path, f.mode & 0o7777)
            mounts.append(Mount(f.target, path))
        return mounts

    def _volumes(self, spec: ProcessSpec) -> list[Mount]:
        """Score volumes: ``<instance root>/<uid>/volumes/<name>[/<path>]``, owned by the app's uid."""
        assert spec.container is not None
        assert spec.user is not None
        mounts = []
        for v in spec.container.volumes:
            top = self.instance_root / str(spec.user) / "volumes" / v.source
            path = top / v.sub_path if v.sub_path else top
            for d in (top.parent, top, path):
                d.mkdir(parents=True, exist_ok=True, mode=0o700)
                if d.lstat().st_uid != spec.user:
                    os.chown(d, spec.user, spec.user, follow_symlinks=False)
            mounts.append(Mount(v.target, path, readonly=v.read_only))
        return mounts

    def _rewrite_hosts(self, bundle: Path) -> None:
        """Rewrite a live instance's hosts file in place (a bind mount follows the inode, not the name):
        ``render_hosts``' three lines of its own (localhost twice, the container's name), then the names."""
        with self._lock:
            names = dict(self._names)
        path = bundle / HOSTS_FILE
        head = path.read_text().splitlines()[:3]
        text = "\n".join(head + [f"{address}\t{name}" for name, address in sorted(names.items())]) + "\n"
        with open(path, "r+") as fh:
            fh.write(text)
            fh.truncate()


__all__ = ["ContainerHost", "image_digest", "instance_mode"]
