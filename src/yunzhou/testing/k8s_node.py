"""A real node for the test control plane: Debian's containerd (runc, CNI bridge/host-local/loopback) and a
kubelet built from the same Kubernetes modules as the control plane (``tools/k8s-testenv/node.sh``).

    with K8sTestEnv(tmp_path / "k8s", real_node=True) as env:
        env.real_node.name              # "real-node-0", Ready, tainted yunzhou.io/real-node=true:NoSchedule
        env.real_node.import_image(...) # an image built here, for pods with imagePullPolicy: Never

Nothing is pulled: the pod sandbox image is Kubernetes' ``pause.c`` compiled here and written as an OCI
image with :class:`yunzhou.build.oci.ImageStore`. Everything lives under ``<env workdir>/node``: the
containerd socket, root and state, the kubelet's root dir, CNI config and IPAM state. Host-wide traces
are a bridge ``yzn<hex>`` with a private /24, a cgroup ``/yunzhou-<node>-<hex>`` in each v1 hierarchy and
the pods' network namespaces in /run/netns; :func:`stop_node` removes all of them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import yaml

from yunzhou.build.oci import ImageConfig, ImageStore
from yunzhou.testing._k8s_pki import CertificateAuthority, KeyPair, kubeconfig
from yunzhou.testing.k8s import (
    K8sTestEnvError,
    _alive,
    _cache_root,
    _free_ports,
    _terminate,
    _write,
    recorded,
    run_build_script,
    spawn,
    tools_dir,
    wait_for,
)

if TYPE_CHECKING:
    from yunzhou.testing.k8s import K8sTestEnv

NODE_BINARIES = ("kubelet", "kube-proxy", "pause")
_KEY_FILES = ("node/go.mod", "node/go.sum", "node.sh")  # in step with tools/k8s-testenv/node.sh
REAL_NODE_TAINT = {"key": "yunzhou.io/real-node", "value": "true", "effect": "NoSchedule"}
REAL_NODE_TOLERATION = {**REAL_NODE_TAINT, "operator": "Equal"}
REAL_NODE_LABEL = ("type", "real")
PAUSE_IMAGE = "localhost/yunzhou/pause:testenv"
CNI_BIN_DIR = Path("/usr/lib/cni")
_KUBE_PROXY_LOCK = "/run/lock/yunzhou-real-node-kube-proxy.lock"
_CGROUP_FS = Path("/sys/fs/cgroup")


# --- binaries -------------------------------------------------------------------------------------------


def node_binaries_dir() -> Path:
    """Same answer as ``node.sh --print-dir``."""
    digest = hashlib.sha256()
    for name in _KEY_FILES:
        digest.update((tools_dir() / name).read_bytes())
    return _cache_root() / f"node-{digest.hexdigest()[:16]}" / "bin"


def ensure_node_binaries(*, build: bool = True) -> Path:
    """kubelet, kube-proxy and pause, built by ``tools/k8s-testenv/node.sh`` when missing."""
    bin_dir = node_binaries_dir()
    if all((bin_dir / n).is_file() for n in NODE_BINARIES):
        return bin_dir
    if not build:
        raise K8sTestEnvError(f"{bin_dir} is not built yet: run `make k8s-build`")
    run_build_script("node.sh")
    return bin_dir


def _host_tool(name: str) -> Path:
    found = shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if found is None:
        raise K8sTestEnvError(f"{name} is not installed (.ci/run installs it from Debian's packages)")
    return Path(found)


# --- the node ---------------------------------------------------------------------------------------------


class RealNode:
    """containerd + kubelet registered as ``name`` with the control plane of ``env``."""

    def __init__(self, env: K8sTestEnv, *, name: str = "real-node-0") -> None:
        self.env = env
        self.name = name
        self.workdir = env.workdir / "node"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.bridge = self.gateway = self.subnet = ""
        self._kube_proxy_healthz = 0
        self._lock: int | None = None

    @property
    def socket(self) -> Path:
        return self.workdir / "run" / "containerd.sock"

    def ctr(self, *args: str, timeout: float = 60) -> str:
        """Run ``ctr`` against this node's containerd, namespace ``k8s.io`` (the CRI plugin's)."""
        return _ctr(self.socket, *args, timeout=timeout)

    def start(self, deadline: float) -> RealNode:
        bin_dir = ensure_node_binaries()
        containerd = _host_tool("containerd")
        for tool in ("runc", "ctr", "ip", "nft", "containerd-shim-runc-v2"):
            _host_tool(tool)
        if not (CNI_BIN_DIR / "bridge").is_file():
            raise K8sTestEnvError(f"{CNI_BIN_DIR}/bridge is missing: install containernetworking-plugins")
        stop_node(self.workdir)  # leftovers of a run that was not stopped
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        self._network()
        cgroup = self._cgroup_root()
        self._spawn("containerd", containerd, ["--config", str(self._containerd_config())])
        self._wait(deadline, "containerd", lambda: self.socket.exists() and _ctr_ok(self.socket))
        self.import_image(PAUSE_IMAGE, {"pause": bin_dir / "pause"}, entrypoint=("/pause",))
        kubelet_args = self._kubelet_args(cgroup)
        self._spawn("kubelet", bin_dir / "kubelet", kubelet_args)
        self._lock_kube_proxy(deadline)
        _write(self.workdir / "nftables", "kube-proxy")  # stop_node deletes kube-proxy's tables
        self._spawn("kube-proxy", bin_dir / "kube-proxy", self._kube_proxy_args())
        with self.env.client(timeout=10) as api:
            self._wait(deadline, f"node {self.name} Ready", lambda: _node_ready(api, self.name))
        url = f"http://127.0.0.1:{self._kube_proxy_healthz}/healthz"
        self._wait(deadline, "kube-proxy /healthz", lambda: httpx.get(url, timeout=2).status_code == 200)
        return self

    def stop(self) -> None:
        try:
            stop_node(self.workdir)
        finally:
            for proc in self._procs.values():
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            self._procs.clear()
            if self._lock is not None:
                os.close(self._lock)  # releases the flock
                self._lock = None

    def import_image(
        self,
        name: str,
        files: Mapping[str, Path],
        *,
        entrypoint: tuple[str, ...] = (),
        cmd: tuple[str, ...] = (),
    ) -> str:
        """Write a one-layer OCI image of ``files`` (path in image → file here) and import it into
        containerd as ``name``; returns the manifest digest. Pods use it with imagePullPolicy: Never."""
        store = ImageStore(self.workdir / "images")
        with tempfile.TemporaryDirectory(dir=self.workdir) as tmp:
            root = Path(tmp, "rootfs")
            for dest, src in files.items():
                target = root / dest.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
            layer = store.add_layer_from_dir(root)
            image = store.write_image(ImageConfig(entrypoint=entrypoint, cmd=cmd), [layer])
            store.tag(name, image.digest)
            archive = Path(tmp, "image.tar")
            store.export([name], archive)
            self.ctr("images", "import", "--no-unpack=false", str(archive))
        return image.digest

    # -- start-up steps

    def _spawn(self, name: str, binary: Path, args: list[str]) -> None:
        self._procs[name] = spawn(self.workdir, name, binary, args, detach=self.env.detach)

    def _wait(self, deadline: float, what: str, ready: Callable[[], bool]) -> None:
        transient = (httpx.TransportError, subprocess.TimeoutExpired)
        wait_for(self.workdir, self._procs, deadline, what, ready, transient=transient)

    def _network(self) -> None:
        """A bridge with a free private /24 made before the kubelet starts: its gateway address is the
        node's InternalIP (the kubelet refuses a loopback node IP) and the CNI bridge plugin reuses it."""
        used = subprocess.run(["ip", "-j", "route"], capture_output=True, text=True, check=True).stdout
        taken = [ipaddress.ip_network(r["dst"]) for r in json.loads(used) if "/" in r.get("dst", "")]
        for _ in range(100):
            net = ipaddress.ip_network(f"10.247.{secrets.randbelow(256)}.0/24")
            if not any(net.overlaps(t) for t in taken):
                break
        else:
            raise K8sTestEnvError("no free 10.247.x.0/24 for the real node's bridge")
        self.bridge, self.subnet, self.gateway = f"yzn{secrets.token_hex(3)}", str(net), str(net[1])
        _write(self.workdir / "bridge", self.bridge)
        ip = ["ip", "link"]
        subprocess.run([*ip, "add", self.bridge, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge], check=True)
        subprocess.run([*ip, "set", self.bridge, "up"], check=True)
        conf = {
            "cniVersion": "0.4.0",
            "name": "yunzhou-real-node",
            "plugins": [
                {
                    "type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local", "dataDir": str(self.workdir / "cni" / "ipam"),
                        "ranges": [[{"subnet": self.subnet, "gateway": self.gateway}]],
                    },
                },
            ],
        }  # fmt: skip
        _write(self.workdir / "cni" / "net.d" / "10-yunzhou.conflist", json.dumps(conf, indent=2))

    def _cgroup_root(self) -> str:
        """``/yunzhou-<node>-<hex>`` in every v1 hierarchy (the kubelet's cgroupRoot must exist); cpuset
        gets its parent's CPUs and memory nodes, which a new v1 cpuset lacks."""
        name = f"/yunzhou-{self.name}-{secrets.token_hex(3)}"
        _write(self.workdir / "cgroup", name)
        for hierarchy in _cgroup_hierarchies():
            path = hierarchy / name.lstrip("/")
            path.mkdir()
            if hierarchy.name == "cpuset":
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (path / f).write_text((hierarchy / f).read_text())
        return name

    def _containerd_config(self) -> Path:
        d = self.workdir / "containerd"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        text = f"""version = 2
root = "{d / "root"}"
state = "{d / "state"}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # Never below containerd's own score: this machine's root lacks CAP_SYS_RESOURCE, so runc's
  # "update /proc/self/oom_score_adj to '-998'" for the pause container is refused (permission denied).
  restrict_oom_score_adj = true
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{d / "runc"}"
  BinaryName = "{_host_tool("runc")}"
[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{self.workdir / "cni" / "net.d"}"
  max_conf_num = 1
"""
        return _write(d / "config.toml", text)

    def _kubeconfig(self, component: str, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig for ``user`` with a client certificate from the test control plane's CA."""
        pki = self.env.workdir / "pki"
        ca = CertificateAuthority.load((pki / "ca.crt").read_bytes(), (pki / "ca.key").read_bytes())
        pair: KeyPair = ca.issue_client(user, groups)
        doc = kubeconfig(self.env.server, ca.pair.cert, user, pair)
        return _write(self.workdir / f"{component}.kubeconfig", yaml.safe_dump(doc), private=True)

    def _lock_kube_proxy(self, deadline: float) -> None:
        """kube-proxy's nftables tables (``ip kube-proxy``, ``ip6 kube-proxy``) have fixed names: one real
        node per machine at a time, so a second waits for the first to stop."""
        self._lock = os.open(_KUBE_PROXY_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise K8sTestEnvError(f"another real node holds {_KUBE_PROXY_LOCK}") from None
                time.sleep(0.2)

    def _kube_proxy_args(self) -> list[str]:
        """nftables mode: its rules live in its own tables, not in the host's iptables chains; conntrack
        sysctls are left alone."""
        metrics, self._kube_proxy_healthz = _free_ports(2)
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "nftables",
            "clientConnection": {"kubeconfig": str(self._kubeconfig("kube-proxy", "system:kube-proxy"))},
            "hostnameOverride": self.name, "clusterCIDR": self.subnet,
            "metricsBindAddress": f"127.0.0.1:{metrics}",
            "healthzBindAddress": f"127.0.0.1:{self._kube_proxy_healthz}",
            "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
            "nodePortAddresses": [f"{self.gateway}/32"],
        }  # fmt: skip
        return [f"--config={_write(self.workdir / 'kube-proxy.yaml', yaml.safe_dump(config))}", "--v=1"]

    def _kubelet_args(self, cgroup_root: str) -> list[str]:
        pki = self.env.workdir / "pki"
        kubeconfig_path = self._kubeconfig("kubelet", f"system:node:{self.name}", ("system:nodes",))
        port, healthz = _free_ports(2)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.gateway, "port": port, "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": healthz,
            "cgroupDriver": "cgroupfs", "cgroupRoot": cgroup_root, "failCgroupV1": False,
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "authentication": {
                "anonymous": {"enabled": False}, "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "registerWithTaints": [REAL_NODE_TAINT],
            "resolvConf": "/etc/resolv.conf", "clusterDomain": "cluster.local",
            "podLogsDir": str(self.workdir / "pod-logs"),
            "volumePluginDir": str(self.workdir / "volume-plugins"),
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            # A shared, busy disk must not evict the test's pods or taint the node.
            "evictionHard": {
                "memory.available": "1Mi", "nodefs.available": "1Mi", "imagefs.available": "1Mi",
            },
            "rotateCertificates": False, "serverTLSBootstrap": False,
            "maxPods": 20,
        }  # fmt: skip
        config_path = _write(self.workdir / "kubelet.yaml", yaml.safe_dump(config))
        key, value = REAL_NODE_LABEL
        return [
            f"--config={config_path}", f"--kubeconfig={kubeconfig_path}",
            f"--root-dir={self.workdir / 'kubelet'}", f"--cert-dir={self.workdir / 'kubelet' / 'pki'}",
            f"--hostname-override={self.name}", f"--node-ip={self.gateway}",
            f"--node-labels={key}={value}", "--v=1",
        ]  # fmt: skip


def _node_ready(api: httpx.Client, name: str) -> bool:
    response = api.get(f"/api/v1/nodes/{name}")
    if response.status_code != 200:
        return False
    node = response.json()
    conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
    taints = {t["key"] for t in node.get("spec", {}).get("taints", [])}
    return conditions.get("Ready") == "True" and "node.kubernetes.io/not-ready" not in taints


def _ctr(socket: Path, *args: str, timeout: float = 60) -> str:
    cmd = ["ctr", "--address", str(socket), "--namespace", "k8s.io", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise K8sTestEnvError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")
    return result.stdout


def _ctr_ok(socket: Path) -> bool:
    return (
        subprocess.run(
            ["ctr", "--address", str(socket), "version"], capture_output=True, timeout=10, check=False
        ).returncode
        == 0
    )


def _cgroup_hierarchies() -> list[Path]:
    return sorted(p for p in _CGROUP_FS.iterdir() if (p / "cgroup.procs").is_file())


# --- stopping (also from another process: make k8s-down) -----------------------------------------------


def stop_node(workdir: Path, *, grace: float = 10.0) -> list[str]:
    """Stop the node recorded under ``workdir`` (``<env workdir>/node``) and undo what it did to the host:
    kube-proxy and the kubelet (and kube-proxy's nftables tables), then containerd; the shims and
    containers they left; the mounts under ``workdir`` and the pods' network namespaces; the bridge; the
    cgroups. Returns the names of the processes that ran."""
    if not workdir.is_dir():
        return []
    running = {name: proc for name, proc in recorded(workdir).items() if _alive(*proc)}
    socket = workdir / "run" / "containerd.sock"
    _terminate([running[name] for name in ("kube-proxy", "kubelet") if name in running], grace)
    if (workdir / "nftables").is_file():
        for family in ("ip", "ip6"):
            subprocess.run(["nft", "delete", "table", family, "kube-proxy"], capture_output=True, check=False)
    netns = sandbox_netns(socket) if "containerd" in running else set()
    if "containerd" in running:  # kill and delete each task: its shim unmounts the rootfs and exits
        with contextlib.suppress(K8sTestEnvError, subprocess.TimeoutExpired):
            for task in _ctr(socket, "tasks", "list", "--quiet", timeout=20).split():
                with contextlib.suppress(K8sTestEnvError, subprocess.TimeoutExpired):
                    _ctr(socket, "tasks", "delete", "--force", task, timeout=20)
    if "containerd" in running:
        _terminate([running["containerd"]], grace)
    cgroup = _read(workdir / "cgroup")
    _kill_leftovers(socket, cgroup)
    for target in sorted(_mounts_under(workdir), key=len, reverse=True) + sorted(netns):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)
    for path in netns:
        with contextlib.suppress(OSError):
            Path(path).unlink()
    bridge = _read(workdir / "bridge")
    if bridge:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
    if cgroup:
        _remove_cgroups(cgroup)
    left = [name for name, (pid, exe) in running.items() if _alive(pid, exe)]
    if left:
        raise K8sTestEnvError(f"real node: still running after SIGKILL: {', '.join(left)}")
    for pid_file in (workdir / "run").glob("*.pid"):
        pid_file.unlink()
    for marker in ("bridge", "cgroup", "nftables"):
        (workdir / marker).unlink(missing_ok=True)
    return [name for name in ("kube-proxy", "kubelet", "containerd") if name in running]


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def sandbox_netns(socket: Path) -> set[str]:
    """The network namespaces of the CRI sandboxes (bind mounts in /run/netns that containerd made)."""
    found: set[str] = set()
    with contextlib.suppress(K8sTestEnvError, subprocess.TimeoutExpired):
        for cid in _ctr(socket, "containers", "list", "--quiet", timeout=20).split():
            info = json.loads(_ctr(socket, "containers", "info", cid, timeout=20))
            spec = info.get("Spec") or {}
            for ns in (spec.get("linux") or {}).get("namespaces") or []:
                path = ns.get("path") or ""
                if ns.get("type") == "network" and path.startswith(("/var/run/netns/", "/run/netns/")):
                    found.add(path)
    return found


def _kill_leftovers(socket: Path, cgroup: str) -> None:
    """SIGKILL the shims of this containerd (their command line names its socket) and every process in
    the node's cgroups (the containers), until none is left."""
    deadline = time.monotonic() + 10
    while True:
        pids = set(_shims(socket))
        if cgroup:
            for hierarchy in _cgroup_hierarchies():
                for procs in (hierarchy / cgroup.lstrip("/")).rglob("cgroup.procs"):
                    pids |= {int(p) for p in _read(procs).split()}
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def _shims(socket: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                if argv and b"containerd-shim" in argv[0] and str(socket).encode() in argv:
                    pids.append(int(proc.name))
    return pids


def _mounts_under(workdir: Path) -> list[str]:
    prefix = f"{workdir.resolve()}/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    return points


def _remove_cgroups(cgroup: str) -> None:
    for hierarchy in _cgroup_hierarchies():
        root = hierarchy / cgroup.lstrip("/")
        if root.is_dir():
            for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts))[::-1]:
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()
