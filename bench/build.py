"""Images benchmark (issue 15): builds, instance starts and cold starts, each next to its anchor in one run.

    .venv/bin/python bench/build.py [--build-runs 3] [--starts 20] [--wakes 10] [--parts build,start,wake]

The sample app is ``tests/data/build/python-app`` (``six`` from PyPI in requirements.txt). Every part
runs on this machine (PyPI is the only thing reached outside); one JSON document is printed at the end.

- ``build``: Yunzhou's builder (``build_image`` with the real ``StackCatalog``, runc steps on the platform
  bridge, an ``ImageStore`` in a temporary folder) against ``buildah bud --layers`` of the equivalent
  Dockerfile ``FROM`` the same python stack image (loaded into a fresh buildah storage). Cold = a fresh
  store (no dependency-layer cache) / a fresh buildah storage; warm = app.py changed, requirements.txt
  not, same store / storage. Runs alternate (ours cold, ours warm, buildah cold, buildah warm).
  Sizes are the compressed layers' sum (and what the app adds on top of the stack's layers).
- ``start``: one instance of the built image through ``LocalSupervisor`` + ``ContainerHost`` (rootfs
  overlay, bridge netns, bundle, ``runc run``, as the local runtime starts it) against the same app as a
  host process under the same supervisor (a host venv with the same requirements); each measured from
  ``ensure`` to the first HTTP 200 on its address and port.
- ``wake``: a real ``yunzhou server``; the app built by the server's own build job (container release)
  and the same app deployed without an image (host-process release), both ``scaleToZero``; each round
  waits until both are at zero, then times one request through the router to each until its answer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from yunzhou.build.builder import BuildContext, BuildRequest, build_image
from yunzhou.build.oci import MEDIA_CONFIG, MEDIA_MANIFEST, ImageRef, ImageStore
from yunzhou.build.stacks import StackCatalog, cache_key, default_cache_dir
from yunzhou.build.steps import SandboxStepRunner
from yunzhou.client import YunzhouClient
from yunzhou.runtimes.base import InstanceStatus
from yunzhou.runtimes.local.containers import ContainerHost
from yunzhou.runtimes.local.spec import ContainerPlan, ProcessSpec
from yunzhou.runtimes.local.supervisor import LocalSupervisor
from yunzhou.sandbox import ContainerSpec, LayerCache, Network, Runc
from yunzhou.testing import ControlPlaneProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "tests" / "data" / "build" / "python-app"
STACK = "python"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PIP_FLAGS = "--no-cache-dir --no-compile --no-input --disable-pip-version-check"  # what the builder uses
CONTAINER_PORT = 8080
CONTAINER_UID = 2_000_000_001  # an app uid of the local runtime's range (isolation.py)
TARGETS = {"warm_rebuild_s": 5.0, "container_start_overhead_ms": 150.0, "cold_start_p50_s": 0.5}


def dockerfile(stack_tag: str) -> str:
    """What a developer would write for this image: the venv from requirements (cached), then the app."""
    return (
        f"FROM {stack_tag}\n"
        "USER 0:0\n"
        "COPY requirements.txt /app/requirements.txt\n"
        f"RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install {PIP_FLAGS} -r /app/requirements.txt\n"
        "COPY . /app\n"
        "USER 10001:10001\n"
        'CMD ["python3", "app.py"]\n'
    )


def stats(samples: list[float], digits: int = 3) -> dict[str, Any]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "runs": [round(s, digits) for s in samples],
        "p50": round(statistics.median(samples), digits),
        "p90": round(p90, digits),
        "max": round(max(samples), digits),
    }


def change_app(source: Path, run: int) -> None:
    """A source change that leaves requirements.txt alone."""
    with (source / "app.py").open("a") as fh:
        fh.write(f"# bench edit {run}\n")


def fresh_source(tmp: Path, name: str) -> Path:
    source = tmp / name
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(APP, source)
    return source


def layer_sizes(layers: list[tuple[str, int]], stack_diff_ids: set[str]) -> dict[str, int]:
    """(diff_id, compressed size) pairs → the image's layer total and what it adds over the stack."""
    return {
        "size_bytes": sum(size for _, size in layers),
        "added_bytes": sum(size for diff_id, size in layers if diff_id not in stack_diff_ids),
    }


# ---- part 1: builds --------------------------------------------------------------------------------------
class Ours:
    def __init__(self, tmp: Path, catalog_cache: Path) -> None:
        self.tmp = tmp
        self.cache_dir = catalog_cache
        self.layers = LayerCache(tmp / "layers")  # shared by runs, as on a server: stack layers unpacked once
        self.runc = Runc(tmp / "runc-steps")
        self.network = Network()
        self.store: ImageStore | None = None
        self.pip_s: float | None = None  # the pip step of the last build (its log), None: cached

    def stack(self) -> tuple[dict[str, Any], ImageRef]:
        """The stack image (built now when the shared cache lacks it) and its layers unpacked once."""
        store = ImageStore(self.tmp / "stack-store")
        catalog = StackCatalog(self.cache_dir, store)
        sources = catalog.apt_sources()
        key = cache_key(catalog.definition(STACK), sources.read_bytes()) if sources else ""
        cached = catalog.cache.resolve(f"cache/{key}") is not None
        began = time.perf_counter()
        ref = catalog.image(STACK)
        stack_s = time.perf_counter() - began
        began = time.perf_counter()
        target = self.tmp / "stack-rootfs"
        target.mkdir()
        self.layers.rootfs(store, ref, target)
        self.layers.release(target)
        info = {
            "name": f"stacks/{STACK}:{catalog.definition(STACK).version}",
            "digest": ref.digest,
            "was_cached": cached,
            "cold_build_s": None if cached else round(stack_s, 1),
            "unpack_layers_s": round(time.perf_counter() - began, 2),
            **layer_sizes([(x.diff_id, x.size) for x in ref.layers], set()),
        }
        return info, ref

    def build(self, source: Path, *, fresh: bool) -> tuple[float, Any]:
        if fresh or self.store is None:
            root = Path(tempfile.mkdtemp(prefix="ours-", dir=self.tmp))
            self.store = ImageStore(root / "images")
        runner = SandboxStepRunner(self.store, self.layers, self.runc, self.tmp / "steps", self.network)
        lines: list[str] = []
        catalog = StackCatalog(self.cache_dir, self.store)
        context = BuildContext(self.store, catalog, runner, self.tmp / "work", log=lines.append)
        request = BuildRequest(source, name="bench/app", command=("python3", "app.py"))
        began = time.perf_counter()
        result = build_image(request, context)
        elapsed = time.perf_counter() - began
        pip = [line for line in lines if line.startswith("dependencies: pip finished in ")]
        self.pip_s = float(pip[0].split()[-2]) if pip else None
        return elapsed, result


def with_history(store: ImageStore, image: ImageRef, tag: str, out: Path) -> Path:
    """An OCI layout holding ``image`` with one ``history`` entry per layer (same layers, same blobs).

    Our stack images carry no history; buildah 1.28's layer cache (``--layers``) needs one entry per
    layer in the base ("history lists 1 non-empty layers, but we have 3 layers on disk") and, with
    ``--omit-history``, never finds a cached step.
    """
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    config = store.config(image.digest)
    config["history"] = [{"created": "1970-01-01T00:00:00Z", "created_by": f"yunzhou stack layer {i}"}
                         for i in range(len(image.layers))]  # fmt: skip

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}"

    for layer in image.layers:
        os.link(store.blob_path(layer.digest), blobs / layer.digest.split(":", 1)[1])
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = store.manifest(image.digest) | {
        "config": {"mediaType": MEDIA_CONFIG, "digest": put(config_bytes), "size": len(config_bytes)}
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    descriptor = {"mediaType": MEDIA_MANIFEST, "digest": put(manifest_bytes), "size": len(manifest_bytes),
                  "annotations": {"org.opencontainers.image.ref.name": tag}}  # fmt: skip
    (out / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    return out


class Buildah:
    def __init__(self, tmp: Path, stack_store: ImageStore, stack: ImageRef, stack_tag: str) -> None:
        self.tmp, self.stack_tag = tmp, stack_tag
        self.base = with_history(stack_store, stack, stack_tag, tmp / "buildah-base")
        self.root: Path | None = None
        self.dockerfile = tmp / "Dockerfile"
        self.dockerfile.write_text(dockerfile(f"localhost/{stack_tag}"))

    def argv(self, *args: str) -> list[str]:
        assert self.root is not None
        return ["buildah", "--root", str(self.root / "storage"), "--runroot", str(self.root / "run"),
                "--storage-driver", "overlay", *args]  # fmt: skip

    def call(self, *args: str, timeout: float = 900) -> str:
        done = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            sys.exit(f"buildah {' '.join(args[:2])} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout.strip()

    def fresh(self) -> float:
        """A new, empty buildah storage with the stack loaded; seconds the loading took."""
        self.close()
        self.root = Path(tempfile.mkdtemp(prefix="buildah-", dir=self.tmp))
        began = time.perf_counter()
        image_id = self.call("pull", "--quiet", f"oci:{self.base}:{self.stack_tag}")
        self.call("tag", image_id, f"localhost/{self.stack_tag}")
        return time.perf_counter() - began

    def build(self, source: Path, tag: str) -> tuple[float, bool]:
        """``buildah bud --layers``; (seconds, whether the pip step came from its cache)."""
        args = ["bud", "--isolation", "oci", "--pull-never", "--layers", "--network", "host",
                "-f", str(self.dockerfile), "-t", tag]  # fmt: skip
        if CA_BUNDLE.is_file():
            args += ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
        began = time.perf_counter()
        out = self.call(*args, str(source))
        elapsed = time.perf_counter() - began
        lines = out.splitlines()
        run_at = next(i for i, line in enumerate(lines) if " RUN python3 -m venv" in line)
        cached = run_at + 1 < len(lines) and lines[run_at + 1].startswith("--> Using cache")
        return elapsed, cached

    def layers(self, tag: str) -> list[tuple[str, int]]:
        """The image pushed (gzip, as a registry would get it) to an OCI folder: (diff_id, size) per layer."""
        out = Path(tempfile.mkdtemp(prefix="push-", dir=self.tmp))
        self.call("push", "--quiet", tag, f"oci:{out}:image")
        blobs = out / "blobs" / "sha256"
        index = json.loads((out / "index.json").read_bytes())
        manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":", 1)[1]).read_bytes())
        config = json.loads((blobs / manifest["config"]["digest"].split(":", 1)[1]).read_bytes())
        shutil.rmtree(out, ignore_errors=True)
        return list(zip(config["rootfs"]["diff_ids"], [x["size"] for x in manifest["layers"]], strict=True))

    def close(self) -> None:
        if self.root is not None:
            subprocess.run(self.argv("rmi", "--all", "--force"), capture_output=True, check=False)
            subprocess.run(["umount", "-R", str(self.root / "storage" / "overlay")], capture_output=True)
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def build_part(tmp: Path, runs: int) -> tuple[dict[str, Any], ImageStore, ImageRef]:
    ours = Ours(tmp, default_cache_dir())
    stack_info, stack_ref = ours.stack()
    stack_diff_ids = {x.diff_id for x in stack_ref.layers}
    buildah = Buildah(tmp, ImageStore(tmp / "stack-store"), stack_ref, stack_info["name"])
    times: dict[str, list[float]] = {
        k: [] for k in ("ours_cold", "ours_warm", "buildah_cold", "buildah_warm")
    }
    reused = {"ours": [], "buildah": []}  # type: dict[str, list[bool]]
    loads: list[float] = []
    pip_s: list[float] = []
    sizes: dict[str, Any] = {}
    try:
        for run in range(runs):
            source = fresh_source(tmp, f"src-{run}")
            cold_s, cold = ours.build(source, fresh=True)
            pip_s.append(ours.pip_s or 0.0)
            change_app(source, run)
            warm_s, warm = ours.build(source, fresh=False)
            times["ours_cold"].append(cold_s)
            times["ours_warm"].append(warm_s)
            reused["ours"].append(warm.deps_cached and not cold.deps_cached)
            assert ours.store is not None
            image = ours.store.image(warm.digest)
            sizes["yunzhou"] = layer_sizes([(x.diff_id, x.size) for x in image.layers], stack_diff_ids)

            source = fresh_source(tmp, f"src-b-{run}")
            loads.append(buildah.fresh())
            cold_s, cold_cached = buildah.build(source, f"localhost/bench-app:{run}-cold")
            change_app(source, run)
            warm_s, warm_cached = buildah.build(source, f"localhost/bench-app:{run}-warm")
            times["buildah_cold"].append(cold_s)
            times["buildah_warm"].append(warm_s)
            reused["buildah"].append(warm_cached and not cold_cached)
            sizes["buildah"] = layer_sizes(buildah.layers(f"localhost/bench-app:{run}-warm"), stack_diff_ids)
    finally:
        buildah.close()
    assert ours.store is not None
    result = {
        "stack": stack_info,
        "seconds": {k: stats(v, 2) for k, v in times.items()},
        "ours_cold_pip_step_s": stats(pip_s, 1),
        "buildah_stack_load_s": stats(loads, 2),
        "warm_reused_dependency_layer": {k: all(v) for k, v in reused.items()},
        "image": sizes,
        "dockerfile": dockerfile(f"localhost/{stack_info['name']}").splitlines(),
    }
    return result, ours.store, ours.store.image(warm.digest)


# ---- part 2: instance start ------------------------------------------------------------------------------
def first_ok(host: str, port: int, deadline: float) -> None:
    """Poll until a GET / on host:port answers 200."""
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0) as conn:
                conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if conn.recv(16).split(b" ")[1:2] == [b"200"]:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host}:{port} never answered 200")
        time.sleep(0.002)


class TimedHost(ContainerHost):
    """The runtime's ContainerHost, remembering how long each ``prepare`` took (rootfs overlay, files,
    netns on the bridge, leftovers removed): the part of a container start before ``runc run``."""

    prepare_ms: list[float]

    def prepare(self, spec: ProcessSpec, cgroups_path: str | None) -> tuple[ContainerSpec, Path]:
        began = time.perf_counter()
        try:
            return super().prepare(spec, cgroups_path)
        finally:
            self.prepare_ms.append((time.perf_counter() - began) * 1000)


def stopped(instance_id: str) -> Callable[[list[InstanceStatus]], bool]:
    def done(statuses: list[InstanceStatus]) -> bool:
        return all(s.state in ("stopped", "failed") for s in statuses if s.instance_id == instance_id)

    return done


def host_venv(tmp: Path) -> Path:
    """The app's requirements in a venv of the host's Debian python3 (what the container's venv is)."""
    venv = tmp / "host-venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True, capture_output=True)
    pip = [str(venv / "bin" / "pip"), "install", *PIP_FLAGS.split(), "-r", str(APP / "requirements.txt")]
    subprocess.run(pip, check=True, capture_output=True, timeout=600)
    return venv


def start_part(tmp: Path, store: ImageStore, image: ImageRef, starts: int) -> dict[str, Any]:
    config = store.config(image.digest).get("config", {})
    argv = tuple(config.get("Entrypoint") or ()) + tuple(config.get("Cmd") or ())
    image_env = dict(item.split("=", 1) for item in config.get("Env") or [])
    venv = host_venv(tmp)
    containers = TimedHost(
        tmp / "instances", store, LayerCache(tmp / "layers"), runc=Runc(tmp / "runc-instances"), scope="bench"
    )
    containers.prepare_ms = []
    samples: dict[str, list[float]] = {"host_process": [], "container": []}
    first: dict[str, list[float]] = {"host_process": [], "container": []}
    with LocalSupervisor(tmp / "supervisor", containers=containers) as supervisor:
        for i in range(-1, starts):  # start -1 is not counted: the first unpacks the app's layers
            for kind in ("host_process", "container"):
                instance_id = f"bench-{kind[0]}{i}"
                began = time.perf_counter()
                if kind == "container":
                    address = containers.attach(
                        instance_id, egress=True
                    )  # as the runtime does before ensure()
                    spec = ProcessSpec(
                        instance_id, "bench", 1, argv, tmp, {"HOME": "/tmp", **image_env}, CONTAINER_PORT,  # noqa: S108 (/tmp in the container)
                        host=address, user=CONTAINER_UID,
                        container=ContainerPlan(f"bench/app@{image.digest}", cwd="/app"),
                    )  # fmt: skip
                else:
                    address, port = "127.0.0.1", free_port()
                    env = {
                        "PATH": f"{venv}/bin:/usr/bin:/bin",
                        "VIRTUAL_ENV": str(venv),
                        "PYTHONUNBUFFERED": "1",
                    }
                    spec = ProcessSpec(
                        instance_id, "bench", 1, (f"{venv}/bin/python3", "app.py"), APP, env, port
                    )
                supervisor.ensure(spec)
                first_ok(address, spec.port, time.monotonic() + 60)
                (samples[kind] if i >= 0 else first[kind]).append((time.perf_counter() - began) * 1000)
                supervisor.stop(instance_id)
                if not supervisor.wait_for(stopped(instance_id), 60):
                    sys.exit(f"instance {instance_id} did not stop within 60 s")
    host, container = stats(samples["host_process"], 1), stats(samples["container"], 1)
    return {
        "starts": starts,
        "first_start_ms": {k: round(v[0], 1) for k, v in first.items()},  # not in the numbers below
        "host_process_ms": host,
        "container_ms": container,
        "container_prepare_ms": stats(containers.prepare_ms[1:], 1),  # part of container_ms
        "overhead_p50_ms": round(container["p50"] - host["p50"], 1),
        "overhead_p90_ms": round(container["p90"] - host["p90"], 1),
    }


# ---- part 3: scale-to-zero cold start --------------------------------------------------------------------
def wake_part(tmp: Path, wakes: int) -> dict[str, Any]:
    settings = {
        "autoscaling": {
            "minReplicas": 0, "maxReplicas": 1,
            "metrics": [{"type": "rps", "target": {"type": "AverageValue", "averageValue": 100}}],
            "scaleToZero": {"enabled": True, "idleSeconds": 10, "holdTimeoutSeconds": 60},
        }
    }  # fmt: skip

    def score(name: str, command: list[str]) -> dict[str, Any]:
        probe = {"httpGet": {"path": "/", "port": CONTAINER_PORT}}
        web = {"image": ".", "command": command, "readinessProbe": probe}
        return {"apiVersion": "score.dev/v1b1", "metadata": {"name": name}, "containers": {"web": web},
                "service": {"ports": {"web": {"port": CONTAINER_PORT}}}}  # fmt: skip

    env = {"YUNZHOU_AUTOSCALE_INTERVAL": "0.5", "YUNZHOU_SCRAPE_INTERVAL": "1"}
    samples: dict[str, list[float]] = {"container": [], "host_process": []}
    decided: dict[str, list[float]] = {"container": [], "host_process": []}
    names = {"container": "built", "host_process": "plain"}
    # a default server runs the built image as containers; a development server (host_processes) runs the
    # same source as a host process: both at once, woken in turn, so both see the same machine
    with (
        ControlPlaneProcess(tmp / "data", env=env, startup_timeout=90) as server,
        ControlPlaneProcess(tmp / "dev-data", env=env, startup_timeout=90, host_processes=True) as dev,
        YunzhouClient(server.url, server.admin_token) as client,
        YunzhouClient(dev.url, dev.admin_token) as dev_client,
    ):
        for c in (client, dev_client):
            c.create_project("bench")
            c.create_environment("bench", "dev")
        artifact = client.upload_artifact(APP)
        began = time.perf_counter()
        build = client.start_build("bench", "dev", artifact, app="built", settings=settings,
                                   score=score("built", ["python3", "app.py"]))  # fmt: skip
        deadline = time.monotonic() + 900
        while build["state"] not in ("succeeded", "failed", "cancelled"):
            if time.monotonic() > deadline:
                sys.exit("the server's build did not finish within 900 s")
            time.sleep(1)
            build = client.get_build(build["id"])
        if build["state"] != "succeeded":
            sys.exit(f"the server's build {build['state']}: {build.get('error')}")
        server_build_s = time.perf_counter() - began
        plain = score("plain", ["/usr/bin/python3", "app.py"])
        dev_client.deploy("bench", "dev", plain, settings, dev_client.upload_artifact(APP))
        clients = {"container": client, "host_process": dev_client}
        hosts = {k: f"{n}.dev.bench.localhost" for k, n in names.items()}
        urls = {"container": f"http://127.0.0.1:{server.router_port}/",
                "host_process": f"http://127.0.0.1:{dev.router_port}/"}  # fmt: skip
        with httpx.Client(timeout=90, trust_env=False) as http:
            for kind in names:  # both answer once before the first round (the first start is not a wake)
                wait(
                    lambda k=kind: get(http, urls[k], hosts[k]).status_code == 200,
                    120,
                    f"{names[kind]} to answer",
                )
            # what ran: the release's image (a container) or none (a host process), and the instance's port
            # (a container listens on 8080 at its own address; a host process on a port of its own)
            ran = {k: {"release_image": clients[k].list_releases("bench", "dev", n)[0].get("image"),
                       "ports": sorted({x["port"] for x in clients[k].list_instances("bench", "dev", n)})}
                   for k, n in names.items()}  # fmt: skip
            for _ in range(wakes):
                for kind, name in names.items():
                    wait(lambda k=kind, n=name: at_zero(clients[k], n), 120, f"{name} to scale to zero")
                for kind in names:
                    sent = time.time()
                    began = time.perf_counter()
                    response = get(http, urls[kind], hosts[kind])
                    samples[kind].append(time.perf_counter() - began)
                    # the wake decision's time splits the cold start: request → decision (the wake poll
                    # and the scale) and decision → answer (reconcile, start, readiness, route push)
                    woke = [d for d in clients[kind].autoscale_decisions("bench", "dev", names[kind], limit=5)
                            if d.get("mode") == "wake" and unix(d["time"]) >= sent - 0.01]  # fmt: skip
                    if woke:
                        decided[kind].append(unix(woke[0]["time"]) - sent)
                    if response.status_code != 200:
                        sys.exit(
                            f"{names[kind]}: the first request got {response.status_code}: {response.text}"
                        )
    container, host = stats(samples["container"]), stats(samples["host_process"])
    return {
        "wakes": wakes,
        "server_build_s": round(server_build_s, 1),
        "image": build.get("image"),
        "ran": ran,
        "container_s": container,
        "host_process_s": host,
        # per stage, p50 seconds: request → wake decision; decision → the answer
        "stages_p50_s": {
            kind: {
                "to_decision": round(statistics.median(decided[kind]), 3) if decided[kind] else None,
                "decision_to_answer": round(
                    statistics.median(samples[kind]) - statistics.median(decided[kind]), 3
                )
                if decided[kind]
                else None,
            }
            for kind in names
        },
    }


def unix(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def get(http: httpx.Client, url: str, host: str) -> httpx.Response:
    try:
        return http.get(url, headers={"Host": host})
    except httpx.HTTPError as exc:
        return httpx.Response(599, text=repr(exc))


def at_zero(client: YunzhouClient, name: str) -> bool:
    app = client.get_app("bench", "dev", name)
    return bool(app["replicas"] == 0 and app["ready_replicas"] == 0)


def wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what} ({timeout:g} s)")
        time.sleep(0.2)


# ---- the document ----------------------------------------------------------------------------------------
def verdicts(result: dict[str, Any]) -> dict[str, Any]:
    met: dict[str, bool | None] = dict.fromkeys(TARGETS)
    if "build" in result:
        met["warm_rebuild_s"] = result["build"]["seconds"]["ours_warm"]["p50"] < TARGETS["warm_rebuild_s"]
    if "start" in result:
        overhead = result["start"]["overhead_p50_ms"]
        met["container_start_overhead_ms"] = overhead <= TARGETS["container_start_overhead_ms"]
    if "wake" in result:
        met["cold_start_p50_s"] = result["wake"]["container_s"]["p50"] < TARGETS["cold_start_p50_s"]
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-runs", type=int, default=3, help="cold+warm pairs per builder")
    parser.add_argument("--starts", type=int, default=20, help="instance starts of each kind")
    parser.add_argument("--wakes", type=int, default=10, help="cold starts from zero of each kind")
    parser.add_argument("--parts", default="build,start,wake", help="which parts (start needs build)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if os.geteuid() != 0:
        sys.exit("bench/build.py needs root (runc containers, the platform bridge, overlay mounts)")
    result: dict[str, Any] = {"benchmark": "build", "load_average_start": list(os.getloadavg())}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="yz-bench-build-") as name:
        tmp = Path(name)
        if parts & {"build", "start"}:
            result["build"], store, image = build_part(tmp, args.build_runs)
            if "start" in parts:
                result["start"] = start_part(tmp, store, image, args.starts)
        if "wake" in parts:
            result["wake"] = wake_part(tmp, args.wakes)
    result["targets"] = TARGETS
    result["met"] = verdicts(result)
    result["load_average_end"] = list(os.getloadavg())
    result["duration_s"] = round(time.perf_counter() - began, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
