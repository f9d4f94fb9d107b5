"""Our OCI layout against another implementation: skopeo (from Debian) reads what we write and we read its."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from yunzhou.build.oci import ImageConfig, ImageStore


def skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", *args], check=True, capture_output=True, text=True, timeout=120).stdout


def test_skopeo_reads_our_layout_and_we_import_its_archive(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.txt").write_text("hi\n")
    os.symlink("hello.txt", src / "link")
    store = ImageStore(tmp_path / "store")
    image = store.write_image(
        ImageConfig(cmd=("sh",), env={"PORT": "8080"}), [store.add_layer_from_dir(src, dest="app")]
    )
    store.tag("demo/app:v1", image.digest)

    inspected = json.loads(skopeo("inspect", f"oci:{tmp_path / 'store'}:demo/app:v1"))
    assert inspected["Digest"] == image.digest
    assert inspected["Layers"] == [image.layers[0].digest]
    assert inspected["Env"] == ["PORT=8080"]

    archive = tmp_path / "copied.tar"
    skopeo("copy", f"oci:{tmp_path / 'store'}:demo/app:v1", f"oci-archive:{archive}:other/name:v2")
    imported = ImageStore(tmp_path / "imported")
    assert imported.import_archive(archive) == {"other/name:v2": image.digest}
    assert imported.image(image.digest) == image

    ours = tmp_path / "ours.tar"
    store.export(["demo/app:v1"], ours)
    copied = json.loads(skopeo("inspect", f"oci-archive:{ours}:demo/app:v1"))
    assert copied["Digest"] == image.digest
