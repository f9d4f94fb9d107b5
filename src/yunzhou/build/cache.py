"""The builder's small JSON index next to the image store: dependency layers by cache key, and the
Debian packages of each stack image by digest (read once from its layers for the SBOM).

``<store>/build-cache.json`` maps a ``DependencyStep.cache_key`` to the layer it produced and the
packages in it (the SBOM of a warm build needs them, and the venv is not on disk then). An entry whose
blob is gone (``ImageStore.remove_unreferenced``) is a miss. Writers take a lock file and replace the
index atomically, so concurrent builds never lose each other's entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import os
import secrets
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from yunzhou.build.oci import ImageRef, ImageStore, Layer
from yunzhou.build.sbom import Package, parse_dpkg_status

INDEX_FILE = "build-cache.json"
DPKG_STATUS = "var/lib/dpkg/status"


@dataclass(frozen=True)
class CachedLayer:
    layer: Layer
    packages: tuple[Package, ...]
    tool: str


class BuildCache:
    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.path = store.root / INDEX_FILE

    def dependency_layer(self, key: str) -> CachedLayer | None:
        entry = self._read().get("dependencies", {}).get(key)
        if not isinstance(entry, dict):
            return None
        layer = Layer(**entry["layer"])
        if not self.store.has(layer.digest):
            return None
        packages = tuple(Package.from_json(p) for p in entry.get("packages", []))
        return CachedLayer(layer, packages, str(entry.get("tool", "")))

    def remember_dependency_layer(self, key: str, cached: CachedLayer) -> None:
        entry = {
            "layer": {
                "digest": cached.layer.digest,
                "diff_id": cached.layer.diff_id,
                "size": cached.layer.size,
                "media_type": cached.layer.media_type,
            },
            "packages": [p.to_json() for p in cached.packages],
            "tool": cached.tool,
        }
        with self._locked() as doc:
            doc.setdefault("dependencies", {})[key] = entry

    def stack_packages(self, image: ImageRef) -> list[Package]:
        """The Debian packages installed in ``image`` (from the last layer holding dpkg's status file)."""
        known = self._read().get("stack_packages", {}).get(image.digest)
        if isinstance(known, list):
            return [Package.from_json(p) for p in known]
        packages = parse_dpkg_status(_dpkg_status(self.store, image.layers))
        with self._locked() as doc:
            doc.setdefault("stack_packages", {})[image.digest] = [p.to_json() for p in packages]
        return packages

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_bytes())
        except (FileNotFoundError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        with open(self.store.root / ".build-cache.lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            doc = self._read()
            yield doc
            tmp = self.path.with_name(f".{self.path.name}.tmp-{secrets.token_hex(4)}")
            tmp.write_bytes(json.dumps(doc, sort_keys=True, indent=1).encode())
            os.replace(tmp, self.path)


def _dpkg_status(store: ImageStore, layers: Sequence[Layer]) -> str:
    """dpkg's status file as the image has it: the topmost layer that writes it wins."""
    for layer in reversed(layers):
        with (
            gzip.open(store.blob_path(layer.digest), "rb") as raw,
            tarfile.open(fileobj=raw, mode="r|") as tar,
        ):
            for member in tar:
                if member.name.removeprefix("./").lstrip("/") == DPKG_STATUS and member.isfile():
                    f = tar.extractfile(member)
                    if f is not None:
                        return f.read().decode(errors="replace")
    return ""
