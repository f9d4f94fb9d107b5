"""An OCI image layout on disk (``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``) and the images in it.

Builds write here, the local runtime reads here, the registry client pushes from and pulls into here.
Every blob is written to a temporary file next to its final place, hashed while it is written, and
renamed into place: readers never see half a blob, and two writers of the same blob both succeed.
``index.json`` changes under a lock file and is replaced atomically. Names (tags) live in index.json as
the ``org.opencontainers.image.ref.name`` annotation. Layer bytes are reproducible (see ``oci_tar``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import secrets
import tarfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO

from yunzhou.build.oci_spec import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_LIMIT,
    MANIFEST_TYPES,
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER_GZIP,
    MEDIA_LAYER_TAR,
    MEDIA_MANIFEST,
    REF_NAME,
    ImageConfig,
    ImageRef,
    Layer,
    canonical_json,
    check_digest,
    check_ref_name,
    entry_name,
    host_architecture,
    platform_manifest,
    render_config,
)
from yunzhou.build.oci_tar import (
    CHUNK,
    EPOCH,
    DiffSink,
    SkipReport,
    copy_stream,
    gunzip_digest,
    gzip_writer,
    is_gzip,
    write_dir_tar,
)
from yunzhou.domain.errors import PermanentError, UserError

__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "EPOCH",
    "MANIFEST_TYPES",
    "MEDIA_CONFIG",
    "MEDIA_INDEX",
    "MEDIA_LAYER_GZIP",
    "MEDIA_LAYER_TAR",
    "MEDIA_MANIFEST",
    "REF_NAME",
    "BlobWriter",
    "ImageConfig",
    "ImageRef",
    "ImageStore",
    "Layer",
    "canonical_json",
    "check_digest",
    "check_ref_name",
    "platform_manifest",
]


class BlobWriter:
    """A blob being written: hashed as it goes, renamed into ``blobs/sha256/`` by ``commit``."""

    def __init__(self, store: ImageStore, expected_digest: str | None = None) -> None:
        self._store = store
        self._expected = check_digest(expected_digest) if expected_digest else None
        self._tmp = store.blob_dir / f".tmp-{secrets.token_hex(8)}"
        self._file: BinaryIO | None = open(self._tmp, "xb")  # noqa: SIM115 (closed by commit/abort)
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        assert self._file is not None, "blob already committed"
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing to do: ``commit`` flushes and syncs (gzip calls this on its own flush)."""

    def commit(self) -> str:
        """Finish the blob; returns its digest. A wrong ``expected_digest`` discards it."""
        assert self._file is not None, "blob already committed"
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        digest = "sha256:" + self._hash.hexdigest()
        if self._expected and digest != self._expected:
            self._tmp.unlink(missing_ok=True)
            raise PermanentError(f"blob content has digest {digest}, expected {self._expected}")
        final = self._store.blob_path(digest)
        try:
            os.utime(final)  # a reused blob is fresh again for remove_unreferenced's grace period
        except FileNotFoundError:
            os.replace(self._tmp, final)
        else:
            self._tmp.unlink(missing_ok=True)
        return digest

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class ImageStore:
    """An OCI image layout rooted at ``root`` (created if missing); safe for concurrent writers."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blob_dir = self.root / "blobs" / "sha256"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        with self._index_lock():
            if not (self.root / "oci-layout").exists():
                self._write_atomic(self.root / "oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
            if not (self.root / "index.json").exists():
                self._write_index([])

    # --- blobs -------------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blob_dir / check_digest(digest).removeprefix("sha256:")

    def has(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def blob_writer(self, expected_digest: str | None = None) -> BlobWriter:
        return BlobWriter(self, expected_digest)

    def put_bytes(self, data: bytes) -> str:
        with self.blob_writer() as w:
            w.write(data)
            return w.commit()

    def put_stream(self, chunks: Iterable[bytes], *, expected_digest: str | None = None) -> str:
        """Write a blob from pieces (a download); with ``expected_digest`` a mismatch stores nothing."""
        with self.blob_writer(expected_digest) as w:
            for chunk in chunks:
                w.write(chunk)
            return w.commit()

    def put_file(self, path: Path, *, move: bool = False) -> str:
        """Copy ``path`` into the blobs (or, with ``move``, rename it there when on the same filesystem)."""
        if move and not path.is_symlink():  # a symbolic link is copied: renaming it would store the link
            digest = _file_digest(path)
            final = self.blob_path(digest)
            try:
                os.replace(path, final)
            except OSError:  # another filesystem: fall back to a copy
                pass
            else:
                os.utime(final)
                return digest
        with self.blob_writer() as w, open(path, "rb") as f:
            copy_stream(f, w)
            digest = w.commit()
        if move:
            path.unlink()
        return digest

    def read_json(self, digest: str) -> dict[str, Any]:
        path = self.blob_path(digest)
        try:
            if path.stat().st_size > INDEX_LIMIT:
                raise UserError(f"blob {digest} is too large to be a manifest or config")
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise UserError(f"blob {digest} is not in the image store {self.root}") from None
        except ValueError as exc:
            raise UserError(f"blob {digest} is not a JSON document: {exc}") from None
        if not isinstance(doc, dict):
            raise UserError(f"blob {digest} is not a JSON object")
        return doc

    # --- layers --------------------------------------------------------------------------------------

    def add_layer_from_dir(
        self,
        src: Path,
        *,
        dest: str = "",
        owner: tuple[int, int] = (0, 0),
        exclude: Sequence[str] = (),
        on_skip: SkipReport | None = None,
    ) -> Layer:
        """A reproducible gzip layer of ``src``'s tree placed at ``dest`` (see ``oci_tar.write_dir_tar``)."""
        with self.blob_writer() as w:
            gz = gzip_writer(w)
            diff = DiffSink(gz)
            write_dir_tar(diff, src, dest=dest, owner=owner, exclude=exclude, on_skip=on_skip)
            gz.close()
            digest = w.commit()
            return Layer(digest=digest, diff_id=diff.digest, size=w.size)

    def add_layer_from_tar(self, tar_path: Path) -> Layer:
        """An existing tar (already reproducible, e.g. mmdebstrap's) as a gzip layer; a .tar.gz is kept."""
        if is_gzip(tar_path):
            diff_id = gunzip_digest(tar_path)
            digest = self.put_file(tar_path)
            return Layer(digest=digest, diff_id=diff_id, size=self.blob_path(digest).stat().st_size)
        with self.blob_writer() as w, open(tar_path, "rb") as f:
            gz = gzip_writer(w)
            diff = DiffSink(gz)
            copy_stream(f, diff)
            gz.close()
            digest = w.commit()
            return Layer(digest=digest, diff_id=diff.digest, size=w.size)

    # --- images --------------------------------------------------------------------------------------

    def write_image(
        self,
        config: ImageConfig,
        layers: Sequence[Layer],
        *,
        base: ImageRef | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> ImageRef:
        """Config + manifest for ``base``'s layers followed by ``layers``; ``config`` overrides ``base``'s."""
        all_layers = (base.layers if base else ()) + tuple(layers)
        for layer in all_layers:
            if not self.has(layer.digest):
                raise UserError(f"layer {layer.digest} is not in the image store {self.root}")
        base_doc = self.config(base.digest) if base else {}
        config_doc = {
            "architecture": base_doc.get("architecture") or host_architecture(),
            "os": base_doc.get("os") or "linux",
            "config": render_config(base_doc.get("config") or {}, config),
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in all_layers]},
        }
        config_bytes = canonical_json(config_doc)
        config_digest = self.put_bytes(config_bytes)
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [
                {"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}
                for layer in all_layers
            ],
        }
        if annotations:
            manifest["annotations"] = dict(annotations)
        manifest_bytes = canonical_json(manifest)
        digest = self.put_bytes(manifest_bytes)
        size = len(manifest_bytes) + len(config_bytes) + sum(layer.size for layer in all_layers)
        return ImageRef(digest=digest, config_digest=config_digest, size=size, layers=all_layers)

    def manifest(self, digest: str) -> dict[str, Any]:
        return self.read_json(digest)

    def config(self, digest: str) -> dict[str, Any]:
        """The image config, given the image's manifest digest (or the config blob's own digest)."""
        doc = self.read_json(digest)
        if isinstance(doc.get("config"), dict) and "layers" in doc:
            return self.read_json(doc["config"]["digest"])
        return doc

    def image(self, digest: str) -> ImageRef:
        """The image ``digest`` names; for an index, its image for this machine's platform."""
        manifest = self.manifest(digest)
        if isinstance(manifest.get("manifests"), list):
            child = platform_manifest(manifest)
            if child is None or not self.has(child):
                raise UserError(f"index {digest} holds no image for this machine's platform here")
            return self.image(child)
        try:
            config_digest = check_digest(manifest["config"]["digest"])
            diff_ids = [check_digest(d) for d in self.read_json(config_digest)["rootfs"]["diff_ids"]]
            layers = tuple(
                Layer(check_digest(d["digest"]), diff_id, int(d["size"]), str(d["mediaType"]))
                for d, diff_id in zip(manifest["layers"], diff_ids, strict=True)
            )
        except (KeyError, TypeError, ValueError) as exc:  # untrusted documents (pulled, imported)
            raise UserError(f"{digest} is not a valid image manifest with its config: {exc!r}") from None
        size = (
            self.blob_path(digest).stat().st_size
            + int(manifest["config"]["size"])
            + sum(layer.size for layer in layers)
        )
        return ImageRef(digest=digest, config_digest=config_digest, size=size, layers=layers)

    # --- names (index.json) --------------------------------------------------------------------------

    def tag(self, name: str, digest: str) -> None:
        check_ref_name(name)
        manifest = self.manifest(digest)
        entry = {
            "mediaType": manifest.get("mediaType") or MEDIA_MANIFEST,
            "digest": digest,
            "size": self.blob_path(digest).stat().st_size,
            "annotations": {REF_NAME: name},
        }
        with self._index_lock():
            entries = [e for e in self._read_index() if entry_name(e) != name]
            self._write_index([*entries, entry])

    def untag(self, name: str) -> bool:
        with self._index_lock():
            entries = self._read_index()
            kept = [e for e in entries if entry_name(e) != name]
            if len(kept) == len(entries):
                return False
            self._write_index(kept)
            return True

    def resolve(self, name: str) -> str | None:
        return self.names().get(name)

    def names(self) -> dict[str, str]:
        return {n: e["digest"] for e in self._read_index() if (n := entry_name(e)) is not None}

    # --- moving images as files ------------------------------------------------------------------------

    def export(self, names: Sequence[str], out: Path) -> None:
        """Write an OCI layout tar holding the images called ``names`` (and only them)."""
        known = self.names()
        missing = [n for n in names if n not in known]
        if missing:
            raise UserError(f"no image named {', '.join(missing)} in the image store {self.root}")
        index = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [e for e in self._read_index() if entry_name(e) in set(names)],
        }
        blobs = sorted(d for d in self._reachable({known[n] for n in names}) if self.has(d))
        tmp = out.with_name(f".{out.name}.tmp-{secrets.token_hex(4)}")
        try:
            with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
                _add_bytes(tar, "oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
                _add_bytes(tar, "index.json", canonical_json(index))
                for name in ("blobs", "blobs/sha256"):
                    info = tarfile.TarInfo(name)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
                    tar.addfile(info)
                for digest in blobs:
                    path = self.blob_path(digest)
                    info = tarfile.TarInfo("blobs/sha256/" + digest.removeprefix("sha256:"))
                    info.size, info.mode, info.mtime = path.stat().st_size, 0o644, EPOCH
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)

    def import_archive(self, path: Path) -> dict[str, str]:
        """Load an OCI layout tar (ours or skopeo's ``oci-archive``); returns the names it tagged."""
        index_doc: Any = None
        try:
            with tarfile.open(path, "r|*") as tar:
                for member in tar:
                    name = member.name.removeprefix("./")
                    if not member.isfile():
                        continue
                    src = tar.extractfile(member)
                    assert src is not None
                    if name == "index.json":
                        if member.size > INDEX_LIMIT:
                            raise UserError(f"{path}: index.json is larger than {INDEX_LIMIT} bytes")
                        index_doc = json.loads(src.read())
                    elif name.startswith("blobs/"):
                        self._import_blob(name, src)
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise UserError(f"{path} is not a readable OCI layout archive: {exc}") from None
        if not isinstance(index_doc, dict) or not isinstance(index_doc.get("manifests"), list):
            raise UserError(f"{path} is not an OCI layout archive (it has no index.json listing manifests)")
        imported: dict[str, str] = {}
        for entry in index_doc["manifests"]:
            if not isinstance(entry, dict):
                raise UserError(f"{path}: index.json lists something that is not a manifest descriptor")
            digest = check_digest(str(entry.get("digest")))
            missing = [d for d in self._reachable({digest}) if not self.has(d)]
            if missing:
                raise UserError(f"{path}: image {digest} lacks blobs {', '.join(missing[:3])}")
            ref_name = entry_name(entry)
            if ref_name is not None:
                self.tag(ref_name, digest)
                imported[ref_name] = digest
        return imported

    def _import_blob(self, name: str, src: IO[bytes]) -> None:
        parts = name.split("/")
        if len(parts) != 3 or parts[1] != "sha256":
            raise UserError(f"archive member {name!r}: only blobs/sha256/<hex> blobs are supported")
        with self.blob_writer(expected_digest=f"sha256:{parts[2]}") as w:
            copy_stream(src, w)
            try:
                w.commit()
            except PermanentError as exc:
                raise UserError(f"archive member {name!r} is corrupt: {exc}") from None

    # --- garbage collection ------------------------------------------------------------------------

    def remove_unreferenced(self, keep: set[str], *, grace_seconds: float = 3600.0) -> int:
        """Delete blobs reachable neither from the ``keep`` manifests nor from a name in index.json.

        Blobs written (or reused) in the last ``grace_seconds`` stay: an image being built right now has
        blobs but no manifest yet. Returns how many blobs (and stale temporary files) were removed.
        """
        with self._index_lock():
            roots = {check_digest(d) for d in keep} | set(self.names().values())
            live = self._reachable(roots)
            cutoff = time.time() - grace_seconds
            removed = 0
            for path in self.blob_dir.iterdir():
                digest = "sha256:" + path.name
                if digest in live:
                    continue
                try:
                    if path.stat().st_mtime > cutoff:
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue
                removed += 1
            return removed

    def _reachable(self, roots: Iterable[str]) -> set[str]:
        """Every blob digest reachable from ``roots`` (manifests and indexes), roots included."""
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            digest = todo.pop()
            if digest in seen:
                continue
            seen.add(digest)
            if not self.has(digest):
                continue
            doc = self.read_json(digest)
            children = [*doc.get("manifests", []), *doc.get("layers", [])]
            if isinstance(doc.get("config"), dict):
                children.append(doc["config"])
            for child in children:
                child_digest = check_digest(child.get("digest"))
                if child.get("mediaType") in (
                    MEDIA_MANIFEST,
                    MEDIA_INDEX,
                    DOCKER_MANIFEST,
                    DOCKER_MANIFEST_LIST,
                ):
                    todo.append(child_digest)
                else:
                    seen.add(child_digest)
        return seen

    # --- index.json plumbing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _index_lock(self) -> Iterator[None]:
        with open(self.root / ".lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _read_index(self) -> list[dict[str, Any]]:
        doc = json.loads((self.root / "index.json").read_bytes())
        return [e for e in doc.get("manifests", []) if isinstance(e, dict)]

    def _write_index(self, entries: list[dict[str, Any]]) -> None:
        entries = sorted(entries, key=lambda e: (entry_name(e) or "", e.get("digest", "")))
        doc = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": entries}
        self._write_atomic(self.root / "index.json", canonical_json(doc))

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, EPOCH
    tar.addfile(info, io.BytesIO(data))
