"""A managed registry (``RegistryProcess``, token auth on) for tests, with the server's full-access client,
and small images to push into it (conftest.py has a plain registry without auth)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from yunzhou.build.oci import ImageConfig, ImageStore
from yunzhou.registry.access import service_client
from yunzhou.registry.client import RegistryClient
from yunzhou.registry.server import RegistryProcess

REALM = "http://127.0.0.1:9/api/v1/registry/token"  # nothing listens: only the service client asks it


@dataclass
class Managed:
    process: RegistryProcess
    client: RegistryClient  # the server's own: every action
    data_dir: Path


@contextmanager
def run_managed(tmp_path: Path) -> Iterator[Managed]:
    """``with run_managed(tmp_path) as registry:`` — a module's fixture wraps this."""
    data_dir = tmp_path / "data"
    process = RegistryProcess(data_dir, realm=REALM).start()
    client = service_client(process.url, process.issuer, REALM)
    try:
        yield Managed(process, client, data_dir)
    finally:
        client.close()
        process.stop()


def small_image(store: ImageStore, tmp: Path, content: bytes, size: int = 0) -> str:
    """An image of one layer holding ``content`` (+ ``size`` random bytes, which compress badly)."""
    src = tmp / f"src-{os.urandom(4).hex()}"
    src.mkdir(parents=True)
    (src / "app.txt").write_bytes(content)
    if size:
        (src / "blob.bin").write_bytes(os.urandom(size))
    layer = store.add_layer_from_dir(src)
    return store.write_image(ImageConfig(cmd=("/bin/true",)), [layer]).digest
