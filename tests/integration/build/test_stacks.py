"""Real stacks built with mmdebstrap from this machine's apt sources.

The python and static stacks are built into the shared stack cache (``YUNZHOU_STACK_CACHE``, default
``~/.cache/yunzhou/stacks``): the first run on a machine takes about a minute each, later runs reuse them.
Reproducibility is checked by building static from scratch in an empty cache and comparing digests.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import tarfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from yunzhou.build.debian import find_apt_sources
from yunzhou.build.oci import ImageRef, ImageStore
from yunzhou.build.stacks import STACKS, StackCatalog, cache_key, default_cache_dir
from yunzhou.domain.errors import PermanentError, UserError, YunzhouError
from yunzhou.sandbox import ContainerSpec, Runc
from yunzhou.testing.server import free_port

# a cold build is 25-90 s on a quiet machine and several minutes on a busy one
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def shared_cache() -> Path:
    return default_cache_dir()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ImageStore:
    return ImageStore(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def catalog(shared_cache: Path, store: ImageStore) -> StackCatalog:
    return StackCatalog(shared_cache, store)


def _unpack(store: ImageStore, ref: ImageRef, root: Path) -> Path:
    for layer in ref.layers:
        with tarfile.open(store.blob_path(layer.digest), "r:gz") as tar:
            tar.extractall(root, filter="fully_trusted")  # noqa: S202  (our own image)
    return root


def _spec(ref_config: dict[str, Any], root: Path, name: str, *args: str, port: int = 8000) -> ContainerSpec:
    """The image's entrypoint (and ``args``, else its command) as its user, read-only root, host network."""
    env = dict(item.split("=", 1) for item in ref_config["Env"])
    return ContainerSpec(
        id=f"yzstack-{os.getpid()}-{name}",
        rootfs=root,
        args=(*ref_config["Entrypoint"], *(args or ref_config["Cmd"])),
        env={**env, "PORT": str(port)},
        cwd=ref_config["WorkingDir"],
        uid=10001,
        gid=10001,
        network="host",
    )


def _run(tmp_path: Path, spec: ContainerSpec) -> tuple[int, str]:
    out = tmp_path / f"{spec.id}.out"
    with out.open("wb") as fh:
        code = Runc(tmp_path / "runc").run(spec, tmp_path / "bundle", stdout=fh, stderr=fh, timeout=120)
    return code, out.read_text()


@contextlib.contextmanager
def _serving(tmp_path: Path, spec: ContainerSpec) -> Iterator[Path]:
    """A long-running container; killed and deleted at the end. Yields its output file."""
    runc = Runc(tmp_path / "runc")
    out = tmp_path / f"{spec.id}.out"
    with out.open("wb") as fh:
        child = runc.spawn(spec, tmp_path / "bundle", fh, fh)
    try:
        yield out
    finally:
        with contextlib.suppress(YunzhouError):
            runc.kill(spec.id, signal.SIGKILL)
        child.wait(timeout=30)
        with contextlib.suppress(YunzhouError):
            runc.delete(spec.id, force=True)


def test_python_stack_builds_then_is_reused_from_the_cache(
    catalog: StackCatalog, store: ImageStore, tmp_path: Path
) -> None:
    steps: list[tuple[str, float]] = []
    ref = catalog.image("python", progress=lambda step, f: steps.append((step, f)))
    assert steps[-1] == ("ready", 1.0)
    assert [f for _, f in steps] == sorted(f for _, f in steps)  # progress only moves forward
    assert store.resolve("stacks/python:3.11") == ref.digest
    config = store.config(ref.digest)["config"]
    assert config["User"] == "10001:10001"
    assert config["WorkingDir"] == "/app"
    assert config["Entrypoint"] == ["/usr/local/bin/yunzhou-start"]
    assert config["Labels"]["io.yunzhou.stack"] == "python:3.11"
    assert len(ref.layers) == 2

    started = time.monotonic()
    again = catalog.image("python")
    assert again.digest == ref.digest
    assert time.monotonic() - started < 30  # from the cache, no mmdebstrap

    root = _unpack(store, ref, tmp_path / "root")
    assert "app:x:10001:10001:" in (root / "etc/passwd").read_text()
    assert (root / "usr/share/doc/python3.11/copyright").is_file()  # licences stay for the SBOM
    pages = (root / "usr/share/man").glob("*/*.gz")
    assert not [p for p in pages if not p.is_symlink()]  # (alternatives leave dangling links: sh.1.gz)
    code, out = _run(
        tmp_path, _spec(config, root, "py", "python3", "-c", "import os, ssl, venv; print(os.getuid())")
    )
    assert (code, out.strip()) == (0, "10001")
    code, out = _run(tmp_path, replace(_spec(config, root, "py-port", "true"), env={"PORT": "eighty"}))
    assert code == 64
    assert "PORT must be a port number" in out


def test_static_stack_serves_app_on_port_as_the_app_user(
    catalog: StackCatalog, store: ImageStore, tmp_path: Path
) -> None:
    ref = catalog.image("static")
    root = _unpack(store, ref, tmp_path / "root")
    (root / "app/index.html").write_text("hello from a stack\n")
    port = free_port()
    config = store.config(ref.digest)["config"]
    with _serving(tmp_path, _spec(config, root, "static", port=port)) as out:
        deadline = time.monotonic() + 60
        body = b""
        while time.monotonic() < deadline:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).content
                break
            except httpx.TransportError:
                time.sleep(0.2)
        log = out.read_text()
    assert body == b"hello from a stack\n", log
    assert '"GET / HTTP/1.1" 200' in log  # the access log goes to stdout


def test_static_built_twice_from_scratch_has_one_digest(catalog: StackCatalog, tmp_path: Path) -> None:
    """Reproducible: two empty caches, two mmdebstrap runs, one manifest digest (and the shared cache's)."""
    digests = []
    for name in ("first", "second"):
        fresh = StackCatalog(tmp_path / name / "cache", ImageStore(tmp_path / name / "store"))
        digests.append(fresh.image("static").digest)
    assert digests[0] == digests[1]
    assert catalog.image("static").digest == digests[0]


def test_export_then_import_on_a_machine_without_a_mirror(
    catalog: StackCatalog, store: ImageStore, tmp_path: Path
) -> None:
    python = catalog.image("python")
    static = catalog.image("static")
    archive = tmp_path / "stacks.tar"
    assert catalog.export(["python", "static"], archive) == ("stacks/python:3.11", "stacks/static:1.22")

    offline = StackCatalog(tmp_path / "other-cache", ImageStore(tmp_path / "other-store"), offline=True)
    with pytest.raises(UserError, match="no apt sources"):
        offline.image("python")
    assert offline.import_archive(archive) == {
        "stacks/python:3.11": python.digest,
        "stacks/static:1.22": static.digest,
    }
    assert offline.image("python").digest == python.digest  # served from the import, nothing built
    listed = {s.name: s for s in offline.list()}
    assert listed["python"].digest == python.digest
    assert listed["python"].current
    assert listed["node"].digest is None


def test_import_refuses_a_tampered_archive(catalog: StackCatalog, tmp_path: Path) -> None:
    catalog.image("static")
    archive = tmp_path / "stacks.tar"
    catalog.export(["static"], archive)
    with tarfile.open(archive) as tar:
        biggest = max(tar.getmembers(), key=lambda m: m.size)
        offset = biggest.offset_data + biggest.size // 2
    with open(archive, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    target = ImageStore(tmp_path / "target")
    with pytest.raises(UserError, match="corrupt"):
        StackCatalog(tmp_path / "c", target, offline=True).import_archive(archive)
    assert "stacks/static:1.22" not in target.names()


def test_import_refuses_a_stack_built_from_another_definition(catalog: StackCatalog, tmp_path: Path) -> None:
    catalog.image("static")
    archive = tmp_path / "stacks.tar"
    catalog.export(["static"], archive)
    changed = {"static": replace(STACKS["static"], cmd=("nginx", "-g", "daemon off;"))}
    other = StackCatalog(tmp_path / "c", ImageStore(tmp_path / "s"), stacks=changed, offline=True)
    with pytest.raises(UserError, match="another definition of the static stack"):
        other.import_archive(archive)
    assert "stacks/static:1.22" not in other.store.names()


def test_a_failing_mmdebstrap_ends_with_its_own_last_lines(tmp_path: Path) -> None:
    broken = {"static": replace(STACKS["static"], packages=("yunzhou-no-such-package",))}
    catalog = StackCatalog(tmp_path / "cache", ImageStore(tmp_path / "store"), stacks=broken)
    with pytest.raises(PermanentError, match="mmdebstrap failed") as failed:
        catalog.image("static")
    assert "yunzhou-no-such-package" in str(failed.value)
    assert not catalog.store.names()
    assert not list((tmp_path / "cache/work").iterdir())  # its temporary files are gone


def _renamed(archive: Path, out: Path, name: str) -> Path:
    """The archive with its one image named ``name`` in index.json."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member) if member.isfile() else None
            if member.name == "index.json" and data is not None:
                index = json.loads(data.read())
                index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = name
                raw = json.dumps(index).encode()
                member.size = len(raw)
                data = io.BytesIO(raw)
            dst.addfile(member, data)
    return out


def test_an_archive_cannot_replace_what_the_cache_built(catalog: StackCatalog, tmp_path: Path) -> None:
    """An archive naming its image like a cache entry (``cache/<key>``) is refused before any of its names
    reaches the cache: the next build still gets this machine's own image."""
    own = catalog.image("static").digest
    sources = find_apt_sources()
    assert sources is not None
    key = cache_key(STACKS["static"], sources.read_bytes())
    assert catalog.cache.resolve(f"cache/{key}") == own
    # an image of another stack under the cache key of static
    catalog.image("python")
    archive = tmp_path / "python.tar"
    catalog.export(["python"], archive)
    forged = _renamed(archive, tmp_path / "forged.tar", f"cache/{key}")
    with pytest.raises(UserError, match=f"cache/{key} is not a stack"):
        catalog.import_archive(forged)
    assert catalog.cache.resolve(f"cache/{key}") == own
    assert catalog.image("static").digest == own
