"""Retention and garbage collection against a real docker-registry: every image a release refers to is
kept (it still pulls), the others go with their signatures and SBOMs, and their blobs leave the disk."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import score
from tests.integration.registry.managed import Managed, run_managed, small_image
from yunzhou.build.oci import ImageStore
from yunzhou.domain.errors import UserError
from yunzhou.registry.access import RegistryAccess
from yunzhou.registry.gc import GcLoop, RetentionPolicy, collect
from yunzhou.registry.images import blobs_bytes, list_images
from yunzhou.registry.sbom import attach_sbom
from yunzhou.registry.server import RegistrySettings
from yunzhou.registry.signing import SigningKey, sign
from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.store import Database, sqlite_url, upgrade
from yunzhou.testing.polling import wait_until

MIB = 1 << 20


@pytest.fixture
def managed_registry(tmp_path: Path) -> Iterator[Managed]:
    with run_managed(tmp_path) as registry:
        yield registry


def blob_file(storage: Path, digest: str) -> Path:
    hex_ = digest.removeprefix("sha256:")
    return storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"


def test_gc_keeps_every_image_a_release_refers_to(managed_registry: Managed, tmp_path: Path) -> None:
    client, process = managed_registry.client, managed_registry.process
    store = ImageStore(tmp_path / "store")
    digests = [small_image(store, tmp_path, f"v{n}".encode(), size=MIB) for n in range(3)]
    for digest in digests:
        client.push(store, "shop/web", digest)  # by digest, as builds push: no tag
    key = SigningKey.load(tmp_path / "keys")
    for digest in digests:
        sign(client, key, "shop/web", digest)
        attach_sbom(client, "shop/web", digest, b'{"spdxVersion":"SPDX-2.3","name":"same for all"}')
    referenced, *others = digests
    listed = {i.digest for i in list_images(client, "shop/web", process.storage) if i.attachment_of is None}
    assert listed == set(digests)
    layers = {d: store.manifest(d)["layers"][0]["digest"] for d in digests}
    before = blobs_bytes(process.storage)

    report = collect(
        process,
        client,
        {f"shop/web@{referenced}", "elsewhere/app@sha256:" + "0" * 64},
        RetentionPolicy(keep_last=0, keep_days=0),
        now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
    )

    assert sorted(report.deleted) == sorted(f"shop/web@{d}" for d in others)
    assert report.attachments_deleted == 4  # two .sig and two .sbom
    assert report.referenced_kept == 1
    # the referenced image still pulls, with its signature and SBOM; the others are gone
    assert client.pull("shop/web", referenced, ImageStore(tmp_path / "pulled")) == referenced
    tags = client.tags("shop/web")
    assert sorted(tags) == sorted(referenced.replace(":", "-") + s for s in (".sig", ".sbom"))
    for digest in others:
        with pytest.raises(UserError, match="not found"):
            client.get_manifest("shop/web", digest)
        assert not blob_file(process.storage, layers[digest]).exists()
    assert blob_file(process.storage, layers[referenced]).exists()
    # blobs freed on disk: the two deleted images' megabyte layers at least
    assert report.bytes_before == before
    assert report.freed_bytes >= 2 * MIB
    assert report.bytes_after == blobs_bytes(process.storage)
    # the registry is back in normal (writable) mode, on the same address
    assert httpx.get(process.url + "/v2/", timeout=5).status_code == 401
    client.push(store, "shop/web", others[0])


def test_gc_keeps_the_newest_and_the_young(managed_registry: Managed, tmp_path: Path) -> None:
    client, process = managed_registry.client, managed_registry.process
    store = ImageStore(tmp_path / "store")
    digests = [small_image(store, tmp_path, f"v{n}".encode()) for n in range(3)]
    for digest in digests:
        client.push(store, "shop/web", digest)
    # everything was pushed just now: a week's grace keeps all of it
    report = collect(process, client, set(), RetentionPolicy(keep_last=0, keep_days=7))
    assert report.deleted == []
    assert report.kept == 3
    # without the grace, keep_last=2 keeps the two newest
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    newest = [i.digest for i in list_images(client, "shop/web", process.storage)][:2]
    report = collect(process, client, set(), RetentionPolicy(keep_last=2, keep_days=7), now=later)
    assert len(report.deleted) == 1
    assert {i.digest for i in list_images(client, "shop/web", process.storage)} == set(newest)


def test_gc_keeps_what_the_stores_releases_refer_to_even_an_old_release(
    managed_registry: Managed, tmp_path: Path
) -> None:
    """The references come from the store (``RegistryService.referenced_images``): a release that is no
    longer current (a rollback target) keeps its image, in whichever environment it is."""
    client, process = managed_registry.client, managed_registry.process
    db = Database(sqlite_url(tmp_path))
    upgrade(db.engine)
    cp = ControlPlane.create(db, managed_registry.data_dir)
    store = ImageStore(tmp_path / "store")
    old, current, unused = (small_image(store, tmp_path, f"v{n}".encode()) for n in range(3))
    for digest in (old, current, unused):
        client.push(store, "shop/web", digest)
    cp.projects.create(SYSTEM, "shop")
    cp.projects.create_environment(SYSTEM, "shop", "prod", "local", None)
    for digest in (old, current):
        cp.apps.deploy(SYSTEM, "shop", "prod", score("web"), {}, None, image=f"shop/web@{digest}")
    referenced = cp.registry.referenced_images()
    assert referenced == {f"shop/web@{old}", f"shop/web@{current}"}
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    report = collect(process, client, referenced, RetentionPolicy(keep_last=0, keep_days=0), now=later)
    assert report.deleted == [f"shop/web@{unused}"]
    for digest in (old, current):
        assert client.pull("shop/web", digest, ImageStore(tmp_path / "pulled")) == digest
    db.dispose()


def test_the_retention_loop_waits_while_a_build_runs(managed_registry: Managed, tmp_path: Path) -> None:
    client, process = managed_registry.client, managed_registry.process
    store = ImageStore(tmp_path / "store")
    digest = small_image(store, tmp_path, b"v1")
    client.push(store, "shop/web", digest)
    asked: list[bool] = []

    def busy() -> bool:
        asked.append(len(asked) < 3)  # a build runs during the first three checks
        return asked[-1]

    access = RegistryAccess(managed_registry.data_dir, RegistrySettings())
    loop = GcLoop(
        process, access.client, set, RetentionPolicy(keep_last=0, keep_days=0), 0.1, busy, busy_retry=0.05
    )
    loop.start()
    try:
        wait_until("a retention run", lambda: loop.last is not None, timeout=60)
    finally:
        loop.stop()
    assert asked[:4] == [True, True, True, False]
    assert loop.last is not None
    assert loop.last.deleted == [f"shop/web@{digest}"]
