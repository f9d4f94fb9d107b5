"""The OCI image store: reproducible layers, images, names, archives and garbage collection."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import stat
import tarfile
import threading
from pathlib import Path

import pytest

from yunzhou.build.oci import (
    MEDIA_INDEX,
    MEDIA_MANIFEST,
    ImageConfig,
    ImageStore,
    Layer,
)
from yunzhou.domain.errors import PermanentError, UserError


def make_tree(root: Path) -> Path:
    (root / "app" / "pkg").mkdir(parents=True)
    (root / "app" / "main.py").write_text("print('hi')\n")
    (root / "app" / "pkg" / "__init__.py").write_text("")
    (root / "app" / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "app" / "run.sh").chmod(0o755)
    (root / "app" / "data.bin").write_bytes(os.urandom(64) * 1000)
    (root / "app" / "link").symlink_to("main.py")
    os.link(root / "app" / "main.py", root / "app" / "hard.py")
    return root / "app"


def layer_members(store: ImageStore, layer: Layer) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(store.blob_path(layer.digest), "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def test_same_directory_twice_gives_the_same_digest(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    src = make_tree(tmp_path / "src")
    first = store.add_layer_from_dir(src, dest="app")
    second = store.add_layer_from_dir(src, dest="app")
    assert first == second
    other_store = ImageStore(tmp_path / "other")
    assert other_store.add_layer_from_dir(src, dest="app") == first


def test_only_mtimes_and_owners_changed_gives_the_same_digest(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    src = make_tree(tmp_path / "src")
    before = store.add_layer_from_dir(src)
    for path in [src, *src.rglob("*")]:
        os.utime(path, (1_700_000_000, 1_700_000_000), follow_symlinks=False)
        os.lchown(path, 1234, 5678)
    assert store.add_layer_from_dir(src) == before


def test_content_change_gives_a_different_digest(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    src = make_tree(tmp_path / "src")
    before = store.add_layer_from_dir(src)
    (src / "pkg" / "__init__.py").write_text("x = 1\n")
    after = store.add_layer_from_dir(src)
    assert after.digest != before.digest
    assert after.diff_id != before.diff_id


def test_layer_entries_are_normalised_and_sorted(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    src = make_tree(tmp_path / "src")
    layer = store.add_layer_from_dir(src, dest="srv/app", owner=(10001, 10001), exclude=("*.bin",))
    members = layer_members(store, layer)
    assert list(members) == [
        "srv",
        "srv/app",
        "srv/app/hard.py",
        "srv/app/link",
        "srv/app/main.py",
        "srv/app/pkg",
        "srv/app/pkg/__init__.py",
        "srv/app/run.sh",
    ]
    assert (members["srv"].uid, members["srv/app"].uid, members["srv/app/main.py"].gid) == (0, 10001, 10001)
    assert all(m.mtime == 0 and m.uname == "" and m.gname == "" for m in members.values())
    assert members["srv/app/run.sh"].mode == 0o755
    assert not any(m.pax_headers for m in members.values())
    header = store.blob_path(layer.digest).read_bytes()[:10]
    assert header[4:8] == b"\0\0\0\0"  # gzip mtime 0


def test_symlinks_and_hard_links_survive(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    src = make_tree(tmp_path / "src")
    members = layer_members(store, store.add_layer_from_dir(src))
    assert members["link"].issym()
    assert members["link"].linkname == "main.py"
    assert members["hard.py"].isfile()  # first in sorted order carries the content
    assert members["main.py"].islnk()
    assert members["main.py"].linkname == "hard.py"
    out = tmp_path / "out"
    with tarfile.open(store.blob_path(store.add_layer_from_dir(src).digest), "r:gz") as tar:
        tar.extractall(out, filter="tar")
    assert os.readlink(out / "link") == "main.py"
    assert os.stat(out / "main.py").st_ino == os.stat(out / "hard.py").st_ino
    assert (out / "main.py").read_text() == "print('hi')\n"


def test_device_nodes_sockets_and_fifos_are_skipped_with_a_reason(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    os.mknod(src / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.mkfifo(src / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "s.sock"))
    skipped: list[tuple[str, str]] = []
    try:
        layer = store.add_layer_from_dir(src, on_skip=lambda path, why: skipped.append((path, why)))
    finally:
        sock.close()
    assert list(layer_members(store, layer)) == ["a.txt"]
    assert skipped == [
        ("null", "a device node cannot be part of an image"),
        ("pipe", "a FIFO cannot be part of an image"),
        ("s.sock", "a socket cannot be part of an image"),
    ]


def test_long_and_non_ascii_names_use_pax_headers_only_there(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    src = tmp_path / "src"
    src.mkdir()
    (src / ("n" * 150)).write_text("long")
    (src / "数据.txt").write_text("utf-8")
    (src / "plain.txt").write_text("plain")
    members = layer_members(store, store.add_layer_from_dir(src))
    assert members["n" * 150].pax_headers
    assert members["数据.txt"].pax_headers
    assert not members["plain.txt"].pax_headers


def test_layer_from_tar_keeps_the_tar_as_its_diff(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    tar_path = tmp_path / "rootfs.tar"
    with tarfile.open(tar_path, "w") as tar:
        info = tarfile.TarInfo("etc/hostname")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"host\n"))
    layer = store.add_layer_from_tar(tar_path)
    assert layer == store.add_layer_from_tar(tar_path)
    assert layer.diff_id == "sha256:" + hashlib.sha256(tar_path.read_bytes()).hexdigest()
    gz_path = tmp_path / "rootfs.tar.gz"
    gz_path.write_bytes(store.blob_path(layer.digest).read_bytes())
    assert store.add_layer_from_tar(gz_path) == layer


def test_write_image_merges_with_the_base(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    src = make_tree(tmp_path / "src")
    base_layer = store.add_layer_from_dir(src, dest="usr")
    base = store.write_image(
        ImageConfig(cmd=("python3",), env={"PATH": "/usr/bin", "LANG": "C.UTF-8"}, user="10001:10001"),
        [base_layer],
    )
    app_layer = store.add_layer_from_dir(src, dest="app")
    image = store.write_image(
        ImageConfig(
            entrypoint=("python3", "main.py"), env={"PORT": "8080"}, workdir="/app", exposed_ports=(8080,)
        ),
        [app_layer],
        base=base,
        annotations={"org.opencontainers.image.source": "test"},
    )
    assert image.layers == (base_layer, app_layer)
    assert image == store.image(image.digest)
    config = store.config(image.digest)
    assert config == store.config(image.config_digest)
    assert config["config"] == {
        "Entrypoint": ["python3", "main.py"],
        "Env": ["LANG=C.UTF-8", "PATH=/usr/bin", "PORT=8080"],
        "User": "10001:10001",
        "WorkingDir": "/app",
        "ExposedPorts": {"8080/tcp": {}},
    }
    assert config["rootfs"]["diff_ids"] == [base_layer.diff_id, app_layer.diff_id]
    manifest = store.manifest(image.digest)
    assert manifest["mediaType"] == MEDIA_MANIFEST
    assert manifest["annotations"] == {"org.opencontainers.image.source": "test"}
    assert image.size == sum(
        store.blob_path(d).stat().st_size for d in [image.digest, image.config_digest]
    ) + sum(layer.size for layer in image.layers)


def test_write_image_refuses_a_layer_it_does_not_hold(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    ghost = Layer(digest="sha256:" + "0" * 64, diff_id="sha256:" + "1" * 64, size=1)
    with pytest.raises(UserError, match="not in the image store"):
        store.write_image(ImageConfig(), [ghost])


def test_tag_resolve_and_names_live_in_index_json(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    image = store.write_image(
        ImageConfig(cmd=("true",)), [store.add_layer_from_dir(make_tree(tmp_path / "s"))]
    )
    store.tag("stacks/python:3.11-1", image.digest)
    store.tag("stacks/python:3.11-1", image.digest)
    assert store.resolve("stacks/python:3.11-1") == image.digest
    assert store.resolve("missing") is None
    index = json.loads((tmp_path / "store" / "index.json").read_text())
    assert index["mediaType"] == MEDIA_INDEX
    assert index["manifests"] == [
        {
            "mediaType": MEDIA_MANIFEST,
            "digest": image.digest,
            "size": store.blob_path(image.digest).stat().st_size,
            "annotations": {"org.opencontainers.image.ref.name": "stacks/python:3.11-1"},
        }
    ]
    assert json.loads((tmp_path / "store" / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert store.untag("stacks/python:3.11-1")
    assert store.names() == {}


@pytest.mark.parametrize("name", ["", "../x", "a b", "a//b", "-a", "x" * 300])
def test_tag_refuses_a_bad_name(tmp_path: Path, name: str) -> None:
    store = ImageStore(tmp_path / "store")
    digest = store.put_bytes(b"{}")
    with pytest.raises(UserError, match="not a valid image name"):
        store.tag(name, digest)


@pytest.mark.parametrize("digest", ["sha256:../../etc/passwd", "sha512:" + "a" * 128, "sha256:" + "A" * 64])
def test_blob_paths_refuse_anything_but_a_sha256_digest(tmp_path: Path, digest: str) -> None:
    with pytest.raises(UserError, match="not a sha256 digest"):
        ImageStore(tmp_path / "store").blob_path(digest)


def test_put_stream_with_a_wrong_digest_stores_nothing(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    with pytest.raises(PermanentError, match="expected"):
        store.put_stream([b"abc"], expected_digest="sha256:" + "0" * 64)
    assert list((tmp_path / "store" / "blobs" / "sha256").iterdir()) == []


def test_concurrent_writers_of_the_same_blob_and_tags(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    data = os.urandom(1 << 20)
    digests: list[str] = []
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            s = ImageStore(tmp_path / "store")
            digest = s.put_bytes(data)
            digests.append(digest)
            s.tag(f"t{i}", s.put_bytes(json.dumps({"n": i}).encode()))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(digests)) == 1
    assert store.has(digests[0])
    assert sorted(store.names()) == [f"t{i}" for i in range(8)]
    assert not [p for p in (tmp_path / "store" / "blobs" / "sha256").iterdir() if p.name.startswith(".tmp")]


def test_export_then_import_into_another_store(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    src = make_tree(tmp_path / "src")
    image = store.write_image(ImageConfig(cmd=("sh",)), [store.add_layer_from_dir(src)])
    other = store.write_image(ImageConfig(cmd=("other",)), [store.add_layer_from_dir(src, dest="x")])
    store.tag("stacks/python:1", image.digest)
    store.tag("stacks/node:1", other.digest)
    archive = tmp_path / "stacks.tar"
    store.export(["stacks/python:1"], archive)
    store.export(["stacks/python:1"], tmp_path / "again.tar")
    assert archive.read_bytes() == (tmp_path / "again.tar").read_bytes()

    target = ImageStore(tmp_path / "target")
    assert target.import_archive(archive) == {"stacks/python:1": image.digest}
    assert target.image(image.digest) == image
    assert not target.has(other.layers[0].digest)
    with pytest.raises(UserError, match=r"no image named stacks/nope"):
        store.export(["stacks/nope"], tmp_path / "x.tar")


def test_import_refuses_a_blob_whose_content_does_not_match_its_name(tmp_path: Path) -> None:
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("blobs/sha256/" + "0" * 64)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    store = ImageStore(tmp_path / "store")
    with pytest.raises(UserError, match="corrupt"):
        store.import_archive(archive)
    with pytest.raises(UserError, match="not a readable OCI layout archive"):
        store.import_archive(tmp_path / "missing.tar")


def test_remove_unreferenced_keeps_what_is_reachable(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    src = make_tree(tmp_path / "src")
    shared = store.add_layer_from_dir(src)
    kept = store.write_image(ImageConfig(cmd=("kept",)), [shared])
    tagged = store.write_image(
        ImageConfig(cmd=("tagged",)), [shared, store.add_layer_from_dir(src, dest="t")]
    )
    dropped = store.write_image(
        ImageConfig(cmd=("dropped",)), [shared, store.add_layer_from_dir(src, dest="d")]
    )
    store.tag("tagged", tagged.digest)
    stray = store.put_bytes(b"stray")

    assert store.remove_unreferenced({kept.digest}) == 0  # everything is inside the grace period
    removed = store.remove_unreferenced({kept.digest}, grace_seconds=0)
    assert removed == 4  # dropped's manifest, config and own layer + the stray blob
    assert not store.has(stray)
    assert not store.has(dropped.digest)
    assert not store.has(dropped.layers[1].digest)
    assert store.image(kept.digest) == kept
    assert store.image(tagged.digest) == tagged


def test_import_writes_nothing_outside_the_store_for_hostile_member_names(tmp_path: Path) -> None:
    archive = tmp_path / "hostile.tar"
    with tarfile.open(archive, "w") as tar:
        link = tarfile.TarInfo("blobs/sha256/" + "1" * 64)
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        info = tarfile.TarInfo("blobs/sha256/../../../escaped")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    store = ImageStore(tmp_path / "store")
    with pytest.raises(UserError, match="only blobs/sha256/<hex> blobs are supported"):
        store.import_archive(archive)
    assert not (tmp_path / "escaped").exists()
    assert not list(tmp_path.rglob("escaped"))
    assert list((tmp_path / "store" / "blobs" / "sha256").iterdir()) == []


def test_import_refuses_an_index_naming_an_image_it_does_not_carry(tmp_path: Path) -> None:
    archive = tmp_path / "partial.tar"
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": MEDIA_MANIFEST,
                "digest": "sha256:" + "2" * 64,
                "size": 10,
                "annotations": {"org.opencontainers.image.ref.name": "x:1"},
            }
        ],
    }
    data = json.dumps(index).encode()
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("index.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    store = ImageStore(tmp_path / "store")
    with pytest.raises(UserError, match="lacks blobs"):
        store.import_archive(archive)
    assert store.names() == {}


def test_an_image_whose_config_names_a_path_as_diff_id_is_refused(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    layer = store.add_layer_from_dir(make_tree(tmp_path / "src"))
    config = store.put_bytes(
        json.dumps({"rootfs": {"type": "layers", "diff_ids": ["sha256:../../x"]}}).encode()
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 1},
        "layers": [{"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}],
    }
    digest = store.put_bytes(json.dumps(manifest).encode())
    with pytest.raises(UserError, match="not a sha256 digest"):
        store.image(digest)
