"""``GET …/apps/{a}/images`` and ``yunzhou images P/E/A``: the app's images in the real registry, newest
first, with size, age, signature, SBOM and the releases of every environment that refer to each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers import score, served
from tests.integration.registry.managed import run_managed, small_image
from yunzhou.api import create_app
from yunzhou.build.oci import ImageStore
from yunzhou.registry.access import RegistryAccess
from yunzhou.registry.sbom import attach_sbom
from yunzhou.registry.server import RegistrySettings
from yunzhou.registry.signing import SigningKey, sign
from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.store import Database, sqlite_url, upgrade


def test_images_of_an_app_with_the_releases_that_refer_to_them(tmp_path: Path) -> None:
    with run_managed(tmp_path) as registry:
        db = Database(sqlite_url(tmp_path))
        upgrade(db.engine)
        cp = ControlPlane.create(db, registry.data_dir)
        cp.ctx.registry_images = RegistryAccess(registry.data_dir, RegistrySettings()).images
        token = cp.tokens.ensure_admin_token(registry.data_dir).read_text().strip()
        store = ImageStore(tmp_path / "store")
        first = small_image(store, tmp_path, b"v1", size=4096)
        second = small_image(store, tmp_path, b"v2")
        for digest in (first, second):
            registry.client.push(store, "shop/web", digest)
        registry.client.push(store, "shop/other", second)  # another app's repository: not listed
        sign(registry.client, SigningKey.load(tmp_path / "keys"), "shop/web", first)
        attach_sbom(registry.client, "shop/web", second, b"{}")
        cp.projects.create(SYSTEM, "shop")
        for env in ("dev", "prod"):
            cp.projects.create_environment(SYSTEM, "shop", env, "local", None)
            cp.apps.deploy(SYSTEM, "shop", env, score("web"), {}, None, image=f"shop/web@{first}")
        cp.apps.deploy(SYSTEM, "shop", "dev", score("web"), {}, None, image=f"shop/web@{second}")

        with served(create_app(cp)) as url:
            r = httpx.get(
                f"{url}/api/v1/projects/shop/environments/prod/apps/web/images",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 200, r.text
            body = r.json()
            cli = subprocess.run(
                [sys.executable, "-m", "yunzhou", "images", "shop/prod/web", *("-o", "json")],
                env={**os.environ, "YUNZHOU_URL": url, "YUNZHOU_TOKEN": token, "NO_COLOR": "1"},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            table = subprocess.run(
                [sys.executable, "-m", "yunzhou", "images", "shop/prod/web"],
                env={
                    **os.environ,
                    "YUNZHOU_URL": url,
                    "YUNZHOU_TOKEN": token,
                    "NO_COLOR": "1",
                    "COLUMNS": "200",
                },
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        db.dispose()

    assert body["repository"] == "shop/web"
    items = {i["digest"]: i for i in body["items"]}
    assert list(items) == [second, first]  # newest first; the .sig/.sbom manifests are not images
    assert items[first]["releases"] == [{"env": "dev", "release": 1}, {"env": "prod", "release": 1}]
    assert items[second]["releases"] == [{"env": "dev", "release": 2}]
    assert (items[first]["signed"], items[first]["sbom"]) == (True, False)
    assert (items[second]["signed"], items[second]["sbom"]) == (False, True)
    assert items[first]["size"] > items[second]["size"] > 0
    assert items[first]["reference"] == f"shop/web@{first}"
    assert all(0 <= i["age_seconds"] < 600 for i in body["items"])
    assert cli.returncode == 0, cli.stderr
    steady = [{k: v for k, v in i.items() if k != "age_seconds"} for i in body["items"]]
    assert [{k: v for k, v in i.items() if k != "age_seconds"} for i in json.loads(cli.stdout)] == steady
    assert table.returncode == 0, table.stderr
    assert "dev#1, prod#1" in table.stdout
