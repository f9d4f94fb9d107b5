"""LayerCache: images from the real ImageStore unpacked once, mounted read-only, whiteouts honoured, hostile
layers refused without touching anything outside, layers in use never pruned."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import signal
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.sandbox.conftest import Sandbox, make_busybox_tree
from yunzhou.build.oci import ImageConfig, ImageRef, ImageStore, Layer
from yunzhou.domain.errors import PermanentError
from yunzhou.sandbox import INIT_MOUNT_POINT, LayerCache, LayerError, Mount
from yunzhou.sandbox.rootfs import is_mounted

MTIME = 1_700_000_000


def entry(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: object
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime, info.mode = kind, len(data), MTIME, 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def tar_layer(
    store: ImageStore, entries: list[tuple[tarfile.TarInfo, bytes]], diff_id: str | None = None
) -> Layer:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data else None)
    plain = raw.getvalue()
    blob = gzip.compress(plain, mtime=0)
    digest = store.put_bytes(blob)
    return Layer(digest, diff_id or "sha256:" + hashlib.sha256(plain).hexdigest(), len(blob))


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[LayerCache]:
    layers = LayerCache(tmp_path / "cache")
    yield layers
    left = list(layers.mounts())
    for target in left:
        layers.release(target)
    assert left == [], "rootfs mounts outlived their test"


@pytest.fixture
def busybox_image(store: ImageStore, tmp_path: Path) -> ImageRef:
    layer = store.add_layer_from_dir(make_busybox_tree(tmp_path / "tree"))
    return store.write_image(ImageConfig(cmd=("sh",)), [layer])


def mounted(cache: LayerCache, store: ImageStore, image: ImageRef, target: Path) -> Path:
    cache.rootfs(store, image, target)
    assert is_mounted(target)
    return target


def test_an_image_runs_from_its_read_only_overlay(
    sandbox: Sandbox, store: ImageStore, cache: LayerCache, busybox_image: ImageRef, tmp_path: Path
) -> None:
    target = mounted(cache, store, busybox_image, tmp_path / "rootfs")
    try:
        spec = sandbox.spec("overlay", "sh", "-c", "cat /www/index.html; touch /www/x", rootfs=target)
        code, out = sandbox.run(spec)
        assert code == 1
        assert "hello from the sandbox" in out
        assert "Read-only file system" in out
        options = next(
            line for line in Path("/proc/self/mountinfo").read_text().splitlines() if f" {target} " in line
        )
        assert {"ro", "nosuid", "nodev"} <= set(options.split()[5].split(","))
    finally:
        cache.release(target)
    assert not is_mounted(target)


def test_layers_are_unpacked_once_shared_and_never_pruned_while_in_use(
    store: ImageStore, cache: LayerCache, busybox_image: ImageRef, tmp_path: Path
) -> None:
    first = mounted(cache, store, busybox_image, tmp_path / "a")
    layer_dir = cache.layers / busybox_image.layers[0].diff_id.removeprefix("sha256:")
    inode = layer_dir.stat().st_ino
    second = mounted(cache, store, busybox_image, tmp_path / "b")
    assert layer_dir.stat().st_ino == inode  # the same unpacked copy
    assert cache.rootfs(store, busybox_image, second) == second  # again: adopted, not mounted twice
    other = store.write_image(ImageConfig(cmd=("true",)), [tar_layer(store, [entry("f", data=b"x")])])
    with pytest.raises(PermanentError, match="already a mount point"):
        cache.rootfs(store, other, second)
    cache.release(first)
    assert cache.prune() == 0  # still under the second rootfs
    cache.release(second)
    assert cache.prune(keep={busybox_image.layers[0].diff_id}) == 0
    assert cache.prune() == 1
    assert not layer_dir.exists()
    assert sorted(p.name for p in cache.layers.iterdir()) == ["skeleton-2"]


def test_a_vanished_mount_does_not_pin_its_layers(
    store: ImageStore, cache: LayerCache, busybox_image: ImageRef, tmp_path: Path
) -> None:
    target = mounted(cache, store, busybox_image, tmp_path / "gone")
    os.system(f"umount {target}")  # noqa: S605 - e.g. a reboot: the record stays, the mount does not
    assert cache.in_use() == set()
    assert cache.prune() == 1


def test_whiteouts_and_opaque_directories_hide_lower_layers(
    sandbox: Sandbox, store: ImageStore, cache: LayerCache, busybox_image: ImageRef, tmp_path: Path
) -> None:
    d = {"mode": 0o755}
    base = tar_layer(
        store,
        [
            entry("a", tarfile.DIRTYPE, **d),
            entry("a/gone", data=b"1"),
            entry("a/kept", data=b"2"),
            entry("opq", tarfile.DIRTYPE, **d),
            entry("opq/old", data=b"3"),
        ],
    )
    top = tar_layer(
        store,
        [
            entry("a", tarfile.DIRTYPE, **d),
            entry("a/.wh.gone"),
            entry("opq", tarfile.DIRTYPE, **d),
            entry("opq/.wh..wh..opq"),
            entry("opq/new", data=b"4"),
        ],
    )
    image = store.write_image(ImageConfig(), [base, top], base=busybox_image)
    target = mounted(cache, store, image, tmp_path / "rootfs")
    try:
        code, out = sandbox.run(sandbox.spec("wh", "sh", "-c", "ls /a; echo --; ls /opq", rootfs=target))
    finally:
        cache.release(target)
    assert (code, out) == (0, "kept\n--\nnew\n")
    top_dir = cache.layers / top.diff_id.removeprefix("sha256:")
    whiteout = os.lstat(top_dir / "a" / "gone")
    assert stat.S_ISCHR(whiteout.st_mode)
    assert whiteout.st_rdev == 0
    assert os.getxattr(top_dir / "opq", "trusted.overlay.opaque") == b"y"


def test_owners_modes_mtimes_and_link_targets_are_kept(store: ImageStore, cache: LayerCache) -> None:
    layer = tar_layer(
        store,
        [
            entry("bin", tarfile.DIRTYPE, mode=0o755),
            entry("bin/tool", data=b"#!/bin/sh\n", mode=0o4755, uid=0, gid=0),
            entry("bin/mine", data=b"x", mode=0o600, uid=1234, gid=5678),
            entry("bin/abs", tarfile.SYMTYPE, linkname="/usr/bin/python3"),
            entry("bin/again", tarfile.LNKTYPE, linkname="bin/mine"),
            entry("dev", tarfile.DIRTYPE, mode=0o755),
            entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3),
        ],
    )
    root = cache.unpack(store, layer)
    tool, mine = os.lstat(root / "bin" / "tool"), os.lstat(root / "bin" / "mine")
    assert (stat.S_IMODE(tool.st_mode), tool.st_uid, tool.st_mtime) == (0o4755, 0, MTIME)
    assert (stat.S_IMODE(mine.st_mode), mine.st_uid, mine.st_gid) == (0o600, 1234, 5678)
    assert os.readlink(root / "bin" / "abs") == "/usr/bin/python3"  # resolved inside the container only
    assert os.lstat(root / "bin" / "again").st_ino == mine.st_ino
    assert not (root / "dev" / "null").exists()  # device nodes are skipped
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    assert os.lstat(root / "bin").st_mtime == MTIME


@pytest.mark.parametrize(
    ("entries", "why"),
    [
        ([entry("/etc/evil", data=b"x")], "absolute path"),
        ([entry("../evil", data=b"x")], "'..'"),
        ([entry("a/../../evil", data=b"x")], "'..'"),
        (
            [entry("link", tarfile.SYMTYPE, linkname="{outside}"), entry("link/evil", data=b"x")],
            "not a directory",
        ),
        ([entry("hard", tarfile.LNKTYPE, linkname="/etc/passwd")], "absolute path"),
        ([entry("hard", tarfile.LNKTYPE, linkname="../../etc/passwd")], "'..'"),
        (
            [
                entry("l", tarfile.SYMTYPE, linkname="{outside}"),
                entry("hard", tarfile.LNKTYPE, linkname="l/victim"),
            ],
            "not a directory",
        ),
        (
            [
                entry("l", tarfile.SYMTYPE, linkname="{outside}/victim"),
                entry("hard", tarfile.LNKTYPE, linkname="l"),
            ],
            "not a regular file",
        ),
    ],
)
def test_hostile_layers_are_refused_and_touch_nothing_outside(
    store: ImageStore,
    cache: LayerCache,
    tmp_path: Path,
    entries: list[tuple[tarfile.TarInfo, bytes]],
    why: str,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("untouched")
    for info, _ in entries:
        info.linkname = info.linkname.replace("{outside}", str(outside))
    layer = tar_layer(store, entries)
    with pytest.raises(LayerError, match=why):
        cache.unpack(store, layer)
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert (outside / "victim").read_text() == "untouched"
    assert os.stat(outside / "victim").st_nlink == 1
    assert list(cache.layers.iterdir()) == []  # the half-unpacked copy is gone


def test_a_layer_whose_content_is_not_its_diff_id_is_refused(store: ImageStore, cache: LayerCache) -> None:
    layer = tar_layer(store, [entry("f", data=b"x")], diff_id="sha256:" + "0" * 64)
    with pytest.raises(LayerError, match="does not match its diff id"):
        cache.unpack(store, layer)
    assert list(cache.layers.iterdir()) == []


def test_a_static_init_at_the_skeletons_mount_point_stops_the_app_on_sigterm(
    sandbox: Sandbox, store: ImageStore, cache: LayerCache, busybox_image: ImageRef, tmp_path: Path
) -> None:
    # `sleep` as pid 1 would ignore SIGTERM; under Debian's tini-static (bound at the skeleton's mount
    # point, which the image itself lacks) the signal reaches it and the container ends at once
    target = mounted(cache, store, busybox_image, tmp_path / "rootfs")
    init = Mount(INIT_MOUNT_POINT, Path("/usr/bin/tini-static"))
    spec = sandbox.spec("init", INIT_MOUNT_POINT, "-g", "--", "sleep", "600", rootfs=target, mounts=(init,))
    try:
        child = sandbox.start(spec)
        sandbox.runc.kill(spec.id, signal.SIGTERM)
        assert child.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        sandbox.stop_all()
        cache.release(target)
