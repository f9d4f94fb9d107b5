"""The builder's plan with a stand-in step runner: layers, configuration, the dependency cache, failures.

The runner here only writes what pip would have written; tests/integration/build runs the real thing.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from yunzhou.build.builder import (
    BuildContext,
    BuildFailed,
    BuildRequest,
    BuildStep,
    build_image,
    failure_message,
)
from yunzhou.build.oci import ImageConfig, ImageRef, ImageStore

DPKG = "Package: python3\nStatus: install ok installed\nVersion: 3.11.2-1+b1\nArchitecture: amd64\n"


@dataclass(frozen=True)
class _Definition:
    version: str = "3.11"
    layout: Mapping[str, str] = field(default_factory=lambda: {"app": "/app", "venv": "/opt/venv"})
    uid_gid: tuple[int, int] = (10001, 10001)


class _Stacks:
    def __init__(self, store: ImageStore, tmp: Path) -> None:
        root = tmp / "stack-root"
        (root / "var/lib/dpkg").mkdir(parents=True)
        (root / "var/lib/dpkg/status").write_text(DPKG)
        layer = store.add_layer_from_dir(root)
        config = ImageConfig(
            entrypoint=("/usr/local/bin/yunzhou-start",),
            cmd=("python3", "app.py"),
            env={"PATH": "/opt/venv/bin:/usr/bin:/bin", "VIRTUAL_ENV": "/opt/venv"},
            user="10001:10001",
            workdir="/app",
            labels={"io.yunzhou.stack": "python:3.11"},
        )
        self.ref = store.write_image(config, [layer])

    def image(
        self, name: str, version: str | None = None, progress=None, *, purpose: str = "run", cancel=None
    ) -> ImageRef:
        return self.ref

    def definition(self, name: str, version: str | None = None) -> _Definition:
        return _Definition(layout={"jar": "/app/app.jar"} if name == "java" else _Definition().layout)


class _Runner:
    """Writes a venv with one distribution where pip would; or fails like pip/python would."""

    def __init__(self) -> None:
        self.steps: list[BuildStep] = []
        self.fail: dict[str, list[str]] = {}
        self.pip_writes: Callable[[Path], None] = _six_venv

    def run(self, step: BuildStep, log, *, timeout: float, cancel: threading.Event) -> int:
        self.steps.append(step)
        if step.name in self.fail:
            for line in self.fail[step.name]:
                log(line)
            return 1
        if step.name == "pip install":
            opt = next(host for target, host, writable in step.mounts if target == "/opt" and writable)
            self.pip_writes(opt)
            log("Successfully installed six-1.16.0")
        return 0


def _six_venv(opt: Path) -> None:
    dist = opt / "venv/lib/python3.11/site-packages/six-1.16.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Name: six\nVersion: 1.16.0\n")


@pytest.fixture
def env(tmp_path: Path):
    store = ImageStore(tmp_path / "images")
    runner = _Runner()
    lines: list[str] = []
    context = BuildContext(store, _Stacks(store, tmp_path), runner, tmp_path / "work", log=lines.append)
    source = tmp_path / "src"
    source.mkdir()
    (source / "app.py").write_text("print('hi')\n")
    (source / "requirements.txt").write_text("six==1.16.0\n")
    (source / "secret.txt").write_text("x")
    (source / "secret.txt").chmod(0o600)
    os.mkfifo(source / "a-fifo")  # copying it would block forever; it is left out
    for junk in (
        ".git/HEAD",
        "__pycache__/app.cpython-311.pyc",
        "node_modules/x/index.js",
        "venv/bin/python",
    ):
        (source / junk).parent.mkdir(parents=True, exist_ok=True)
        (source / junk).write_text("junk")
    return store, runner, context, source, lines


def _members(store: ImageStore, digest: str) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(store.blob_path(digest).read_bytes()), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def test_python_image_has_stack_dependency_and_app_layers_and_a_config(env) -> None:
    store, runner, context, source, _ = env
    request = BuildRequest(
        source,
        command=("gunicorn", "app:app"),
        args=("-w", "2"),
        name="shop/web",
        labels={"org.opencontainers.image.revision": "abc123"},
    )
    result = build_image(request, context)
    image = store.image(result.digest)
    assert len(image.layers) == 3
    deps, app = _members(store, image.layers[1].digest), _members(store, image.layers[2].digest)
    assert "opt/venv/lib/python3.11/site-packages/six-1.16.0.dist-info/METADATA" in deps
    assert set(app) == {"app", "app/app.py", "app/requirements.txt", "app/secret.txt"}
    assert all((m.uid, m.gid) == (0, 0) for m in app.values())
    assert app["app/secret.txt"].mode == 0o644
    assert app["app"].mode == 0o755
    config = store.config(result.digest)["config"]
    assert config["Entrypoint"] == ["/usr/local/bin/yunzhou-start"]
    assert config["Cmd"] == ["gunicorn", "app:app", "-w", "2"]
    assert config["User"] == "10001:10001"
    assert "PORT=8080" in config["Env"]
    assert "VIRTUAL_ENV=/opt/venv" in config["Env"]
    assert config["ExposedPorts"] == {"8080/tcp": {}}
    assert config["Labels"]["org.opencontainers.image.created"] == "1970-01-01T00:00:00Z"
    assert config["Labels"]["org.opencontainers.image.revision"] == "abc123"
    assert config["Labels"]["org.opencontainers.image.base.digest"] == result.stack_digest
    assert (result.stack, result.stack_version, result.deps_cached) == ("python", "3.11", False)
    sbom = json.loads(result.sbom)
    assert [p["name"] for p in sbom["packages"][1:]] == ["python3", "six"]
    pip = runner.steps[0]
    assert (pip.uid, pip.egress) == (10001, True)
    assert ("/mnt", False) in {(t, w) for t, _, w in pip.mounts}
    assert "PIP_INDEX_URL" not in pip.env
    assert not any(k.startswith("PIP_FIND") for k in pip.env)
    assert pip.env["PIP_CERT"] == "/etc/ssl/certs/ca-certificates.crt"
    assert runner.steps[1].name == "syntax check"
    assert runner.steps[1].egress is False


def test_a_warm_rebuild_reuses_the_dependency_layer_without_running_pip(env) -> None:
    store, runner, context, source, lines = env
    first = build_image(BuildRequest(source), context)
    (source / "app.py").write_text("print('changed')\n")
    second = build_image(BuildRequest(source), context)
    assert [s.name for s in runner.steps] == ["pip install", "syntax check", "syntax check"]
    assert second.deps_cached
    assert any("reusing the cached layer" in line and "pip not run" in line for line in lines)
    assert store.image(first.digest).layers[1] == store.image(second.digest).layers[1]
    assert first.digest != second.digest
    assert json.loads(second.sbom)["packages"][2]["name"] == "six"
    (source / "app.py").write_text("print('hi')\n")
    assert build_image(BuildRequest(source), context).digest == first.digest
    (source / "requirements.txt").write_text("six==1.15.0\n")
    assert build_image(BuildRequest(source), context).deps_cached is False


def test_a_failing_pip_raises_build_failed_with_pips_words(env) -> None:
    _, runner, context, source, lines = env
    runner.fail["pip install"] = [
        "Collecting nonexistent-pkg",
        "ERROR: Could not find a version that satisfies the requirement nonexistent-pkg",
        "ERROR: No matching distribution found for nonexistent-pkg",
    ]
    with pytest.raises(BuildFailed) as caught:
        build_image(BuildRequest(source), context)
    assert "No matching distribution found for nonexistent-pkg" in caught.value.message
    assert caught.value.message.startswith("pip install failed (exit code 1)")
    assert "Traceback" not in caught.value.message
    assert lines[-1] == "ERROR: No matching distribution found for nonexistent-pkg"
    assert not (context.work_dir).exists()


def test_time_limit_and_cancel_stop_before_the_next_step(env) -> None:
    _, _, context, source, _ = env
    with pytest.raises(BuildFailed, match="time limit of 0 s"):
        build_image(BuildRequest(source, time_limit=0), context)
    context.cancel.set()
    with pytest.raises(BuildFailed, match="cancelled") as caught:
        build_image(BuildRequest(source), context)
    assert caught.value.code == "cancelled"


def test_java_puts_the_jar_where_the_stack_runs_it(env) -> None:
    store, runner, context, _, _ = env
    source = context.work_dir.parent / "java"
    source.mkdir()
    (source / "demo-1.0.jar").write_bytes(b"PK\x03\x04")
    result = build_image(BuildRequest(source), context)
    layers = store.image(result.digest).layers
    assert len(layers) == 2
    assert set(_members(store, layers[1].digest)) == {"app", "app/app.jar"}
    assert runner.steps == []


def test_failure_message_starts_at_the_tools_error() -> None:
    tail = [
        "Compiling '/mnt/app.py'...",
        "*** Error compiling '/mnt/app.py'...",
        '  File "/mnt/app.py", line 1',
        "    def (",
        "        ^",
        "SyntaxError: invalid syntax",
    ]
    message = failure_message("python3 -m compileall", 1, tail)
    assert message.splitlines()[1] == "*** Error compiling '/mnt/app.py'..."
    assert message.endswith("SyntaxError: invalid syntax")
    assert failure_message("npm ci", 2, ["a", "b"]) == "npm ci failed (exit code 2):\na\nb"


def test_failure_message_keeps_the_lines_before_a_wrappers_last_error_line() -> None:
    tail = [
        "STEP 2/2: RUN python3 -c 'import x'",
        "Traceback (most recent call last):",
        '  File "<string>"',
        "ModuleNotFoundError: No module named 'x'",
        'Error: building at STEP "RUN …": exit status 1',
    ]
    message = failure_message("buildah bud", 1, tail)
    assert "ModuleNotFoundError: No module named 'x'" in message
    assert message.endswith("exit status 1")


def _all_layer_bytes(store: ImageStore) -> bytes:
    blobs = sorted(store.blob_dir.iterdir())
    return b"".join(gzip.decompress(p.read_bytes()) for p in blobs if p.read_bytes()[:2] == b"\x1f\x8b")


def test_a_dependency_step_that_leaves_a_link_to_a_host_folder_fails_and_publishes_nothing(
    env, tmp_path: Path
) -> None:
    store, runner, context, source, _ = env
    host = tmp_path / "host-only"
    host.mkdir()
    (host / "key.pem").write_text("host-secret-material")
    runner.pip_writes = lambda opt: (opt / "venv").symlink_to(host)  # what a hostile setup.py could do
    with pytest.raises(BuildFailed, match="left /opt/venv as something other than a folder"):
        build_image(BuildRequest(source), context)
    assert b"host-secret-material" not in _all_layer_bytes(store)


def test_the_sbom_never_reads_host_files_through_links_a_build_step_left(env, tmp_path: Path) -> None:
    _, runner, context, source, _ = env
    host_file = tmp_path / "host-metadata"
    host_file.write_text("Name: leaked-from-the-host\nVersion: 1\n")
    host_dir = tmp_path / "host-dist"
    host_dir.mkdir()
    (host_dir / "METADATA").write_text("Name: leaked-through-a-folder\nVersion: 2\n")

    def hostile(opt: Path) -> None:
        _six_venv(opt)
        site = opt / "venv/lib/python3.11/site-packages"
        (site / "a-1.dist-info").mkdir()
        (site / "a-1.dist-info/METADATA").symlink_to(host_file)
        (site / "b-1.dist-info").symlink_to(host_dir)

    runner.pip_writes = hostile
    result = build_image(BuildRequest(source), context)
    assert b"leaked" not in result.sbom
    assert b'"six"' in result.sbom


def test_a_jar_that_is_a_link_to_a_host_file_is_refused(env, tmp_path: Path) -> None:
    store, _, context, _, _ = env
    (tmp_path / "host.key").write_text("host-secret-material")
    source = tmp_path / "linked"
    source.mkdir()
    (source / "app.jar").symlink_to(tmp_path / "host.key")
    with pytest.raises(BuildFailed, match=r"app\.jar is a symbolic link"):
        build_image(BuildRequest(source), context)
    assert b"host-secret-material" not in _all_layer_bytes(store)


def test_the_log_warns_when_the_default_command_runs_a_file_the_source_lacks(env) -> None:
    _, _, context, source, lines = env
    (source / "app.py").rename(source / "main.py")
    build_image(BuildRequest(source), context)
    assert any(line.startswith("warning: the image runs `python3 app.py`") for line in lines)
    lines.clear()
    build_image(BuildRequest(source, command=("python3", "main.py")), context)
    assert not any(line.startswith("warning:") for line in lines)
