"""Issue 15 switch-over: a server whose local target runs containers (its default) refuses a release that
has no image to run — at deploy and at rollback — and writes nothing; a redeploy of Score ``image: "."``
without a build keeps the image the app was built into; config changes and restarts keep it too.
The services over a real database; ``local_runs_images`` is what ``yunzhou server`` sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import UnixClock, score, upload_source
from yunzhou.domain.errors import UserError
from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.store import Database

BUILT = "shop/orders@sha256:" + "a" * 64


@pytest.fixture
def cp(database: Database, tmp_path: Path) -> ControlPlane:
    data = tmp_path / "data"
    data.mkdir()
    control = ControlPlane.create(database, data, clock=UnixClock())
    control.projects.create(SYSTEM, "shop")
    control.projects.create_environment(SYSTEM, "shop", "dev", "local", None)
    return control


def releases(cp: ControlPlane) -> list[tuple[int, str | None]]:
    items = cp.apps.releases("shop", "dev", "orders")
    return sorted((r["number"], r.get("image")) for r in items)


def test_a_release_without_an_image_is_refused_and_nothing_is_written(cp: ControlPlane) -> None:
    plain = score(command=["python3", "-m", "http.server"])
    cp.apps.deploy(SYSTEM, "shop", "dev", plain, None, None)  # a development server: allowed, with a note
    cp.ctx.local_runs_images = True  # the server's default
    with pytest.raises(UserError) as refused:
        cp.apps.deploy(SYSTEM, "shop", "dev", plain, {"replicas": 2}, None)
    [problem] = refused.value.problems
    assert problem.path == "containers.web.image"
    assert "'python:3.11' is not an image of project 'shop'" in problem.message
    assert "YUNZHOU_INSTANCE_MODE=process" in problem.message
    assert len(releases(cp)) == 1  # nothing written

    cp.apps.deploy(SYSTEM, "shop", "dev", score(image="."), None, None, image=BUILT)  # a build's release
    with pytest.raises(UserError, match="release 1 cannot run on this server: this server runs every"):
        cp.apps.rollback(SYSTEM, "shop", "dev", "orders", 1)
    assert len(releases(cp)) == 2


def test_a_redeploy_without_a_build_keeps_the_built_image_as_do_config_changes_and_restarts(
    cp: ControlPlane, tmp_path: Path
) -> None:
    cp.ctx.local_runs_images = True
    built = score(image=".", command=["python3", "app.py"], variables={"DEBUG": "${resources.env.DEBUG}"})
    built["resources"] = {"env": {"type": "environment"}}
    cp.config.update(SYSTEM, "shop", "dev", None, {"DEBUG": "0"}, [], None)
    cp.apps.deploy(SYSTEM, "shop", "dev", built, None, None, image=BUILT)
    again = cp.apps.deploy(SYSTEM, "shop", "dev", built, {"replicas": 3}, None)
    [note] = again["warnings"]
    assert note["path"] == "containers.web.image"
    assert note["message"].startswith("'.' is the image built from the app's source and no build ran")
    assert f"keeps release 1's image {BUILT}" in note["message"]
    # new source without a build does not get the old image: on this server it has nothing to run
    upload = upload_source(cp, tmp_path / "src", {"app.py": "print('v2')\n"})
    with pytest.raises(UserError, match=r"containers\.web\.image: this server runs every instance"):
        cp.apps.deploy(SYSTEM, "shop", "dev", built, None, upload)
    cp.config.update(SYSTEM, "shop", "dev", None, {"DEBUG": "1"}, [], None)  # a config release
    cp.healing.restart(SYSTEM, "shop", "dev", "orders", "test")  # a restart release
    assert releases(cp) == [(1, BUILT), (2, BUILT), (3, BUILT), (4, BUILT)]
