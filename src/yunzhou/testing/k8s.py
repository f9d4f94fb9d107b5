"""A real Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (simulated nodes that make pods Ready), all on free loopback ports.

    with K8sTestEnv(tmp_path / "k8s") as env:
        env.kubeconfig        # admin kubeconfig (CA and client certificate embedded)
        env.server            # https://127.0.0.1:PORT
        env.client()          # an httpx.Client authenticated as that admin

The binaries come from the wrapper Go modules in ``tools/k8s-testenv``: :func:`ensure_binaries` runs its
``build.sh`` when ``~/.cache/yunzhou/k8s/<key>/bin`` is missing (tens of minutes on a fresh machine,
nothing afterwards). ``python -m yunzhou.testing.k8s build|up|down|status`` backs ``make k8s-build``,
``make k8s-up`` and ``make k8s-down``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import ctypes.util
import functools
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from yunzhou.testing._k8s_pki import CertificateAuthority, kubeconfig, private_pem, public_pem

if TYPE_CHECKING:
    from yunzhou.testing.k8s_node import RealNode

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the first address of SERVICE_CIDR: the `kubernetes` Service
POD_CIDR = "10.244.0.0/16"
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")
KWOK_STAGES = "kwok-stages.yaml"  # written beside the binaries by build.sh
# Keep this list and order in step with key_files in tools/k8s-testenv/build.sh.
_KEY_FILES = tuple(
    f"{module}/go.{ext}" for module in ("kubernetes", "etcd", "kwok") for ext in ("mod", "sum")
)
_KEY_FILES += ("build.sh",)
CRDS_SCRIPT = "crds.sh"  # fetches the CRD bundle; the bundle's cache key hashes this script alone
_LOCALHOST = "127.0.0.1"
_POLL_INTERVAL = 0.1  # between readiness checks; every wait is bounded by a deadline
_STOP_GRACE = 10.0
_LOG_TAIL_LINES = 30
_PR_SET_PDEATHSIG = 1
_STOP_ORDER = (("kwok", "kube-scheduler", "kube-controller-manager"), ("kube-apiserver",), ("etcd",))
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class K8sTestEnvError(RuntimeError):
    """The test control plane could not be built, started or stopped."""


# --- binaries -------------------------------------------------------------------------------------------


def tools_dir() -> Path:
    """``tools/k8s-testenv`` of this checkout (or ``$YUNZHOU_K8S_TOOLS``)."""
    override = os.environ.get("YUNZHOU_K8S_TOOLS")
    return Path(override) if override else Path(__file__).resolve().parents[3] / "tools" / "k8s-testenv"


def binaries_dir() -> Path:
    """Where the binaries for the current wrapper modules live (or ``$YUNZHOU_K8S_BIN``).

    Same answer as ``build.sh --print-dir``: the key hashes the modules' go.mod/go.sum and the script.
    """
    override = os.environ.get("YUNZHOU_K8S_BIN")
    if override:
        return Path(override)
    tools = tools_dir()
    digest = hashlib.sha256()
    for name in _KEY_FILES:
        path = tools / name
        if not path.is_file():
            raise K8sTestEnvError(f"{path} is missing: set YUNZHOU_K8S_BIN to a built bin directory")
        digest.update(path.read_bytes())
    return _cache_root() / digest.hexdigest()[:16] / "bin"


def binaries_available() -> bool:
    bin_dir = binaries_dir()
    return all((bin_dir / name).is_file() for name in (*BINARIES, KWOK_STAGES))


def ensure_binaries(*, build: bool = True) -> Path:
    """The bin directory, building it first with ``tools/k8s-testenv/build.sh`` if it is missing.

    The build prints its progress (binary, packages compiled, elapsed time) on stderr.
    """
    bin_dir = binaries_dir()
    if binaries_available():
        return bin_dir
    if os.environ.get("YUNZHOU_K8S_BIN"):
        raise K8sTestEnvError(f"YUNZHOU_K8S_BIN={bin_dir} lacks some of {', '.join(BINARIES)}")
    if not build:
        raise K8sTestEnvError(f"{bin_dir} is not built yet: run `make k8s-build`")
    script = run_build_script("build.sh")
    if not binaries_available():
        raise K8sTestEnvError(f"{script} finished but {bin_dir} is incomplete")
    return bin_dir


def run_build_script(name: str) -> Path:
    """Run ``tools/k8s-testenv/<name>`` (progress on stderr); raise if it fails. Returns its path."""
    script = tools_dir() / name
    result = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise K8sTestEnvError(f"{script} failed with exit code {result.returncode} (progress is above)")
    return script


def _cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("YUNZHOU_K8S_CACHE") or Path(xdg) / "yunzhou" / "k8s")


def crds_path() -> Path:
    """The CRD bundle for the pinned versions in ``crds.sh`` (same answer as ``crds.sh --print-path``)."""
    script = tools_dir() / CRDS_SCRIPT
    if not script.is_file():
        raise K8sTestEnvError(f"{script} is missing")
    return _cache_root() / f"crds-{hashlib.sha256(script.read_bytes()).hexdigest()[:16]}" / "crds.yaml"


def ensure_crds(*, fetch: bool = True) -> Path:
    """The CRD bundle (prometheus-operator, Istio, Gateway API, KEDA, cert-manager), fetched through the Go
    module proxy by ``tools/k8s-testenv/crds.sh`` when it is missing."""
    path = crds_path()
    if path.is_file():
        return path
    if not fetch:
        raise K8sTestEnvError(f"{path} is not fetched yet: run `make k8s-build`")
    script = tools_dir() / CRDS_SCRIPT
    result = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0 or not path.is_file():
        raise K8sTestEnvError(f"{script} failed with exit code {result.returncode} (its output is above)")
    return path


def crd_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def binary_versions(bin_dir: Path) -> dict[str, str]:
    """``{"kubernetes": "v1.34.12", "etcd": …, "kwok": …}`` as recorded by the build."""
    lines = (bin_dir / "VERSIONS").read_text().split()
    return dict(line.split("=", 1) for line in lines)


# --- files and processes -------------------------------------------------------------------------------


def _write(path: Path, data: bytes | str, *, private: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return path


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all held open while choosing, so none repeats)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind((_LOCALHOST, 0))
        return [s.getsockname()[1] for s in sockets]


def _die_with(parent: int) -> Callable[[], None]:
    def setup() -> None:  # runs in the child between fork and exec: keep it to syscalls
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def _exe_of(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return None


def _alive(pid: int, binary: Path) -> bool:
    """True while ``pid`` is running ``binary`` (a reused pid or a zombie is not our process)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and _exe_of(pid) == binary


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:])


def spawn(
    workdir: Path, name: str, binary: Path, args: list[str], *, detach: bool
) -> subprocess.Popen[bytes]:
    """Start ``binary`` in its own session with its output in ``workdir/logs/<name>.log`` and its pid in
    ``workdir/run/<name>.pid`` (for :func:`stop_recorded`); unless ``detach``, it dies with this process."""
    binary = binary.resolve()
    log = workdir / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(workdir)}  # kwok keeps state under ~/.kwok
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(binary), *args], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env, cwd=workdir, start_new_session=True,
            preexec_fn=None if detach else _die_with(os.getpid()),
        )  # fmt: skip
    _write(workdir / "run" / f"{name}.pid", f"{proc.pid}\n{binary}\n")
    return proc


def wait_for(
    workdir: Path,
    procs: dict[str, subprocess.Popen[bytes]],
    deadline: float,
    what: str,
    ready: Callable[[], bool],
    *,
    transient: tuple[type[BaseException], ...] = (httpx.TransportError,),
) -> None:
    """Poll ``ready`` until it holds; fail with the log tail of any of ``procs`` that exits meanwhile, or
    at ``deadline``. ``transient`` errors from ``ready`` count as "not yet"."""
    while True:
        for name, proc in procs.items():
            if proc.poll() is not None:
                log = workdir / "logs" / f"{name}.log"
                raise K8sTestEnvError(
                    f"{name} exited with {proc.returncode} while waiting for {what}; {log}:\n{_log_tail(log)}"
                )
        with contextlib.suppress(*transient):
            if ready():
                return
        if time.monotonic() >= deadline:
            raise K8sTestEnvError(f"timed out waiting for {what}; see {workdir}/logs")
        time.sleep(_POLL_INTERVAL)


def recorded(workdir: Path) -> dict[str, tuple[int, Path]]:
    """``{name: (pid, binary)}`` from ``workdir/run/<name>.pid``, running or not."""
    found = {}
    for pid_file in sorted((workdir / "run").glob("*.pid")):
        pid_text, _, binary = pid_file.read_text().partition("\n")
        found[pid_file.stem] = (int(pid_text), Path(binary.strip()))
    return found


def stop_recorded(workdir: Path, *, grace: float = _STOP_GRACE) -> list[str]:
    """Stop every process whose pid file is under ``workdir/run``: clients of the API server first, then
    the API server, then etcd (an API server that loses etcd first hangs on its way out). Each group
    gets SIGTERM, then SIGKILL after ``grace`` seconds.

    Works from any process (``make k8s-down``); a pid is signalled only while it still runs the binary
    recorded with it. Returns the names of the processes that were running. Raises if any survive.
    """
    from yunzhou.testing.k8s_node import stop_node

    node = stop_node(workdir / "node", grace=grace)  # a real node first: it talks to the API server
    running = {name: proc for name, proc in recorded(workdir).items() if _alive(*proc)}
    ordered = [name for tier in _STOP_ORDER for name in tier]
    tiers = [*_STOP_ORDER, tuple(name for name in running if name not in ordered)]
    for tier in tiers:
        _terminate([running[name] for name in tier if name in running], grace)
    left = [name for name, (pid, exe) in running.items() if _alive(pid, exe)]
    if left:
        raise K8sTestEnvError(f"still running after SIGKILL: {', '.join(left)}")
    for pid_file in (workdir / "run").glob("*.pid"):
        pid_file.unlink()
    with contextlib.suppress(FileNotFoundError):
        (workdir / "env.json").unlink()
    return node + [name for name in ordered if name in running] + list(tiers[-1])


def _terminate(processes: list[tuple[int, Path]], grace: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, exe in processes:
            if _alive(pid, exe):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, sig)
        deadline = time.monotonic() + grace
        while any(_alive(pid, exe) for pid, exe in processes):
            if time.monotonic() > deadline:
                break
            time.sleep(_POLL_INTERVAL)
        else:
            return


# --- the environment -------------------------------------------------------------------------------------


class K8sTestEnv:
    """etcd + kube-apiserver (TLS, RBAC + Node authorization) + kube-controller-manager + kube-scheduler +
    kwok with ``nodes`` fake nodes, state under ``workdir`` (pki/, logs/, run/*.pid, kubeconfig).

    ``detach=True`` leaves the processes running when this Python process exits (``make k8s-up``);
    otherwise they are stopped at exit and killed by the kernel if it dies.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        nodes: int = 3,
        bin_dir: Path | None = None,
        start_timeout: float = 180.0,
        detach: bool = False,
        crds: bool = True,
        real_node: bool = False,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.nodes = nodes
        self.crds = crds  # install the CRD bundle (ensure_crds) before start() returns
        self.bin_dir = bin_dir
        self.start_timeout = start_timeout
        self.detach = detach
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._ports: dict[str, int] = {}
        self._ssl: ssl.SSLContext | None = None
        self._with_real_node = real_node  # containerd + kubelet after the control plane (k8s_node.py)
        self._real_node: RealNode | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def server(self) -> str:
        if "apiserver" not in self._ports:
            raise K8sTestEnvError("the test control plane is not started")
        return f"https://{_LOCALHOST}:{self._ports['apiserver']}"

    @property
    def node_names(self) -> list[str]:
        return [f"kwok-node-{i}" for i in range(self.nodes)]

    @property
    def real_node(self) -> RealNode:
        if self._real_node is None:
            raise K8sTestEnvError("this environment has no real node (K8sTestEnv(..., real_node=True))")
        return self._real_node

    @property
    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self._procs.items()}

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client for the API server, authenticated with the admin client certificate."""
        if self._ssl is None:
            raise K8sTestEnvError("the test control plane is not started")
        return httpx.Client(base_url=self.server, verify=self._ssl, **kwargs)

    def start(self) -> K8sTestEnv:
        if self._procs:
            raise K8sTestEnvError("already started")
        bin_dir = self.bin_dir = self.bin_dir or ensure_binaries()
        crds = ensure_crds() if self.crds else None
        self.workdir.mkdir(parents=True, exist_ok=True)
        stop_recorded(self.workdir)  # leftovers of an earlier run that was not stopped
        shutil.rmtree(self.workdir / "etcd", ignore_errors=True)  # every start is a fresh cluster
        if not self.detach:
            atexit.register(self.stop)
        try:
            deadline = time.monotonic() + self.start_timeout
            self._start(bin_dir, deadline)
            if crds is not None:
                self.install_crds(crd_documents(crds), deadline=deadline)
            if self._with_real_node:
                from yunzhou.testing.k8s_node import RealNode

                self._real_node = RealNode(self)
                self._real_node.start(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every process this environment started (see :func:`stop_recorded`); none is left."""
        try:
            if self._real_node is not None:
                self._real_node.stop()
            stop_recorded(self.workdir)
        finally:
            for proc in self._procs.values():
                if proc.poll() is None:  # not ours any more by the pid file's account: still end it
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()  # reap
            self._procs.clear()
            atexit.unregister(self.stop)

    def __enter__(self) -> K8sTestEnv:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.server if self._procs else "stopped"
        return f"K8sTestEnv({str(self.workdir)!r}, {where})"

    # -- start-up steps

    def _start(self, bin_dir: Path, deadline: float) -> None:
        ports = _free_ports(5)
        self._ports = dict(zip(("etcd", "etcd-peer", "apiserver", "kcm", "scheduler"), ports, strict=True))
        pki = self._write_pki()
        etcd_url = f"http://{_LOCALHOST}:{self._ports['etcd']}"
        self._spawn("etcd", bin_dir, self._etcd_args(etcd_url))
        self._wait(deadline, "etcd /health", lambda: _http_ok(f"{etcd_url}/health", None))
        self._spawn("kube-apiserver", bin_dir, self._apiserver_args(etcd_url, pki))
        self._wait(deadline, "kube-apiserver /readyz", lambda: _http_ok(f"{self.server}/readyz", self._ssl))
        self._spawn("kube-controller-manager", bin_dir, self._kcm_args(pki))
        self._spawn("kube-scheduler", bin_dir, self._scheduler_args(pki))
        self._spawn("kwok", bin_dir, self._kwok_args(bin_dir, pki))
        for port in ("kcm", "scheduler"):
            url = f"https://{_LOCALHOST}:{self._ports[port]}/healthz"
            self._wait(deadline, url, functools.partial(_http_ok, url, self._ssl))
        with self.client(timeout=10) as api:
            for name in self.node_names:
                response = api.post("/api/v1/nodes", json=_node(name))
                if response.status_code not in (201, 409):
                    raise K8sTestEnvError(f"creating node {name}: {response.status_code} {response.text}")
            self._wait(deadline, f"{self.nodes} Ready kwok nodes", lambda: self._nodes_ready(api))
            # Pods are refused until the service-account controller has made the namespace's default SA.
            sa = "/api/v1/namespaces/default/serviceaccounts/default"
            self._wait(deadline, "the default service account", lambda: api.get(sa).status_code == 200)
        self._record_env(bin_dir)

    def install_crds(self, crds: list[dict[str, Any]], *, deadline: float | None = None) -> list[str]:
        """Create the CustomResourceDefinitions (an existing one is left as it is) and wait until the API
        server serves each (condition Established). Returns their names."""
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        names = [crd["metadata"]["name"] for crd in crds]
        with self.client(timeout=30) as api:
            for crd in crds:
                response = api.post(path, json=crd)
                if response.status_code not in (201, 409):
                    raise K8sTestEnvError(
                        f"creating CRD {crd['metadata']['name']}: {response.status_code} {response.text}"
                    )

            def established() -> bool:
                items = api.get(path).json().get("items", [])
                ok = {
                    i["metadata"]["name"]
                    for i in items
                    for c in (i.get("status") or {}).get("conditions") or []
                    if c["type"] == "Established" and c["status"] == "True"
                }
                return ok >= set(names)

            def listable() -> bool:  # Established comes before the resource's storage is ready (429)
                return all(api.get(url).status_code == 200 for url in lists)

            lists = [
                f"/apis/{c['spec']['group']}/{v['name']}/{c['spec']['names']['plural']}?limit=1"
                for c in crds
                for v in c["spec"]["versions"]
                if v.get("served")
            ]
            wait_until = deadline or time.monotonic() + 60
            self._wait(wait_until, f"{len(names)} CRDs Established", established)
            self._wait(wait_until, f"{len(names)} CRDs serving their resources", listable)
        return names

    def _write_pki(self) -> dict[str, Path]:
        ca = CertificateAuthority("yunzhou-k8s-testenv-ca")
        svc = "kubernetes.default.svc"
        hosts = (_LOCALHOST, "localhost", SERVICE_IP, "kubernetes", "kubernetes.default", svc)
        serving = ca.issue_serving("k8s-testenv", (*hosts, f"{svc}.cluster.local"))
        # The aggregation layer's own CA: the API server proxies to extension servers with this identity.
        front_proxy = CertificateAuthority("yunzhou-k8s-testenv-front-proxy-ca")
        proxy_client = front_proxy.issue_client("front-proxy-client")
        sa_key = ec.generate_private_key(ec.SECP256R1())
        kubelet_client = ca.issue_client("kube-apiserver-kubelet-client", ("system:masters",))
        d = self.workdir / "pki"
        files: dict[str, tuple[bytes, bool]] = {  # name: (content, private)
            "ca.crt": (ca.pair.cert, False), "ca.key": (ca.pair.key, True),
            "serving.crt": (serving.cert, False), "serving.key": (serving.key, True),
            "sa.key": (private_pem(sa_key), True), "sa.pub": (public_pem(sa_key), False),
            "front-proxy-ca.crt": (front_proxy.pair.cert, False),
            "front-proxy-client.crt": (proxy_client.cert, False),
            "front-proxy-client.key": (proxy_client.key, True),
            # the API server's identity towards kubelets (logs, exec, port-forward): a cluster admin
            "kubelet-client.crt": (kubelet_client.cert, False),
            "kubelet-client.key": (kubelet_client.key, True),
        }  # fmt: skip
        users = {  # kubeconfig file: (user, groups)
            "admin.kubeconfig": ("yunzhou-admin", ("system:masters",)),
            "kube-controller-manager.kubeconfig": ("system:kube-controller-manager", ()),
            "kube-scheduler.kubeconfig": ("system:kube-scheduler", ()),
            "kwok.kubeconfig": ("kwok", ("system:masters",)),
        }
        server = f"https://{_LOCALHOST}:{self._ports['apiserver']}"
        for file, (user, groups) in users.items():
            pair = ca.issue_client(user, groups)
            files[file] = (yaml.safe_dump(kubeconfig(server, ca.pair.cert, user, pair)).encode(), True)
            if user == "yunzhou-admin":
                files |= {"admin.crt": (pair.cert, False), "admin.key": (pair.key, True)}
        paths = {
            name: _write(d / name, content, private=private) for name, (content, private) in files.items()
        }
        _write(self.kubeconfig, files["admin.kubeconfig"][0], private=True)
        self._ssl = ssl.create_default_context(cafile=str(paths["ca.crt"]))
        self._ssl.load_cert_chain(paths["admin.crt"], paths["admin.key"])
        return paths

    def _etcd_args(self, url: str) -> list[str]:
        peer = f"http://{_LOCALHOST}:{self._ports['etcd-peer']}"
        return [
            "--name=default", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={url}", f"--advertise-client-urls={url}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}", "--initial-cluster-state=new",
            "--unsafe-no-fsync", "--log-level=warn",
        ]  # fmt: skip

    def _apiserver_args(self, etcd_url: str, pki: dict[str, Path]) -> list[str]:
        return [
            f"--etcd-servers={etcd_url}",
            f"--bind-address={_LOCALHOST}", f"--advertise-address={_LOCALHOST}",
            f"--secure-port={self._ports['apiserver']}",
            f"--tls-cert-file={pki['serving.crt']}", f"--tls-private-key-file={pki['serving.key']}",
            f"--client-ca-file={pki['ca.crt']}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-account-key-file={pki['sa.pub']}",
            f"--service-account-signing-key-file={pki['sa.key']}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--requestheader-client-ca-file={pki['front-proxy-ca.crt']}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki['front-proxy-client.crt']}",
            f"--proxy-client-key-file={pki['front-proxy-client.key']}",
            f"--kubelet-client-certificate={pki['kubelet-client.crt']}",
            f"--kubelet-client-key={pki['kubelet-client.key']}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",  # a node name does not resolve here
            "--endpoint-reconciler-type=none",  # its loopback address is not a valid Endpoints IP
            "--allow-privileged=true", "--profiling=false",
        ]  # fmt: skip

    def _component_args(self, port: str, kubeconfig: Path, pki: dict[str, Path]) -> list[str]:
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={_LOCALHOST}", f"--secure-port={self._ports[port]}",
            f"--tls-cert-file={pki['serving.crt']}", f"--tls-private-key-file={pki['serving.key']}",
            "--leader-elect=false", "--profiling=false",
        ]  # fmt: skip

    def _kcm_args(self, pki: dict[str, Path]) -> list[str]:
        return [
            *self._component_args("kcm", pki["kube-controller-manager.kubeconfig"], pki),
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki['sa.key']}",
            f"--root-ca-file={pki['ca.crt']}",
            f"--cluster-signing-cert-file={pki['ca.crt']}", f"--cluster-signing-key-file={pki['ca.key']}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
        ]  # fmt: skip

    def _scheduler_args(self, pki: dict[str, Path]) -> list[str]:
        return self._component_args("scheduler", pki["kube-scheduler.kubeconfig"], pki)

    def _kwok_args(self, bin_dir: Path, pki: dict[str, Path]) -> list[str]:
        key, value = KWOK_ANNOTATION
        return [
            f"--kubeconfig={pki['kwok.kubeconfig']}",
            f"--config={bin_dir / KWOK_STAGES}",
            "--manage-all-nodes=false", f"--manage-nodes-with-annotation-selector={key}={value}",
            "--node-lease-duration-seconds=40", f"--cidr={POD_CIDR}", f"--node-ip={_LOCALHOST}",
        ]  # fmt: skip

    def _spawn(self, name: str, bin_dir: Path, args: list[str]) -> None:
        self._procs[name] = spawn(self.workdir, name, bin_dir / name, args, detach=self.detach)

    def _wait(self, deadline: float, what: str, ready: Callable[[], bool]) -> None:
        wait_for(
            self.workdir, self._procs, deadline, f"{what} (start timeout {self.start_timeout:.0f}s)", ready
        )

    def _nodes_ready(self, api: httpx.Client) -> bool:
        response = api.get("/api/v1/nodes")
        if response.status_code != 200:
            return False
        ready = set()
        for node in response.json()["items"]:
            conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
            taints = {t["key"] for t in node.get("spec", {}).get("taints", [])}
            if conditions.get("Ready") == "True" and "node.kubernetes.io/not-ready" not in taints:
                ready.add(node["metadata"]["name"])
        return ready >= set(self.node_names)

    def _record_env(self, bin_dir: Path) -> None:
        state: dict[str, Any] = {"server": self.server, "kubeconfig": str(self.kubeconfig)}
        state |= {"bin_dir": str(bin_dir), "pids": self.pids, "versions": binary_versions(bin_dir)}
        _write(self.workdir / "env.json", json.dumps(state, indent=2) + "\n")
        link = self.workdir / "bin"  # so `.k8s-testenv/bin/kubectl` works after `make k8s-up`
        if link.is_symlink():
            link.unlink()
        if not link.exists():
            link.symlink_to(bin_dir.resolve(), target_is_directory=True)


def _http_ok(url: str, verify: ssl.SSLContext | None) -> bool:
    return httpx.get(url, verify=verify if verify is not None else True, timeout=2).status_code == 200


def _node(name: str) -> dict[str, Any]:
    """A Node kwok manages (by annotation). Untainted, so ordinary workloads land on it."""
    key, value = KWOK_ANNOTATION
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    labels |= {"node-role.kubernetes.io/agent": "", "type": "kwok"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {key: value}},
        "status": {
            "allocatable": resources,
            "capacity": resources,
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "fake"},
        },
    }


# --- command line (make k8s-build / k8s-up / k8s-down) -------------------------------------------------


def _iter_status(workdir: Path) -> Iterator[str]:
    state_file = workdir / "env.json"
    if not state_file.is_file():
        yield f"not running (no {state_file})"
        return
    state = json.loads(state_file.read_text())
    yield f"server {state['server']}, kubeconfig {state['kubeconfig']}"
    for name, pid in state["pids"].items():
        alive = _alive(pid, (Path(state["bin_dir"]) / name).resolve())
        yield f"  {name:<24} pid {pid:<8} {'running' if alive else 'NOT RUNNING'}"
    for name, (pid, binary) in recorded(workdir / "node").items():  # the real node, if any
        yield f"  {name:<24} pid {pid:<8} {'running' if _alive(pid, binary) else 'NOT RUNNING'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m yunzhou.testing.k8s", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=["build", "up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=Path(".k8s-testenv"), help="state directory")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--real-node", action="store_true", help="also containerd + a kubelet (as root)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(ensure_binaries())
            print(ensure_crds())
            from yunzhou.testing.k8s_node import ensure_node_binaries

            print(ensure_node_binaries())
        elif args.command == "up":
            started = time.monotonic()
            env = K8sTestEnv(args.dir, nodes=args.nodes, detach=True, real_node=args.real_node).start()
            print(f"k8s-testenv up in {time.monotonic() - started:.1f}s: {env.server}")
            print(f"  {env.workdir / 'bin' / 'kubectl'} --kubeconfig {env.kubeconfig} get nodes")
        elif args.command == "down":
            stopped = stop_recorded(args.dir)
            print(f"k8s-testenv down: stopped {', '.join(stopped) or 'nothing (not running)'}")
        else:
            print("\n".join(_iter_status(args.dir)))
    except K8sTestEnvError as e:
        print(f"k8s-testenv: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
