"""The Builds and Images tabs over the in-process API: an app's builds newest first (state, stack, duration,
who, image, release), a build's page with its log followed by htmx, Cancel for developers (audited by the
API) and not for viewers, the console's 404 for a build that is not this app's; the app's registry images
with tags, size, age, the releases that keep them and their signature; both languages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.conftest import Api
from tests.helpers import upload_source
from tests.integration.web.conftest import Browser
from tests.integration.web.test_console import seed
from yunzhou.services import SYSTEM
from yunzhou.store.models import AuditEvent, Build

APP = "/projects/shop/dev/apps/web"
DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
SCORE_API = {
    "apiVersion": "score.dev/v1b1",
    "metadata": {"name": "api"},
    "containers": {"api": {"image": "python:3.11-slim", "command": ["python3", "app.py"]}},
}
PYTHON_APP = {"requirements.txt": "flask==3.0.0\n", "app.py": "print('hi')\n"}


def start_build(api: Api, tmp_path: Path, principal: str = "dana", app: str = "web") -> str:
    """A queued build of ``app`` started through the API by a developer (no worker runs it here)."""
    artifact = upload_source(api.cp, tmp_path / f"src-{app}", PYTHON_APP)
    who = api.member("shop", principal, "developer")
    r = api.http.post(
        "/api/v1/projects/shop/environments/dev/builds", json={"artifact": artifact, "app": app}, headers=who
    )
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def finish(api: Api, build_id: str, **fields: Any) -> Build:
    """What the build worker would have written when the build ended."""
    with api.cp.ctx.db.transaction() as s:
        row = s.get(Build, build_id)
        assert row is not None
        for name, value in fields.items():
            setattr(row, name, value)
        s.flush()
        s.expunge(row)
        return row


def write_log(api: Api, build_id: str, text: str) -> None:
    with api.cp.ctx.db.transaction() as s:
        row = s.get(Build, build_id)
        assert row is not None
        path = Path(row.log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log:
        log.write(text)


def row_of(page: str, marker: str) -> str:
    """The table row that holds ``marker`` (its ``data-…`` attribute)."""
    return page[page.index(marker) :].split("</tr>", 1)[0]


def build_state(api: Api, build_id: str) -> str:
    r = api.http.get(f"/api/v1/builds/{build_id}", headers=api.admin)
    assert r.status_code == 200, r.text
    return str(r.json()["state"])


def test_builds_tab_lists_the_apps_builds_newest_first(
    browser: Browser, web_api: Api, tmp_path: Path
) -> None:
    seed(web_api)
    older = start_build(web_api, tmp_path)
    started = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    finish(
        web_api, older, state="succeeded", image_digest=DIGEST, image_size=4096, release=1,
        started_at=started, finished_at=started + timedelta(seconds=65),
    )  # fmt: skip
    newer = start_build(web_api, tmp_path, principal="erin")
    browser.login(web_api.admin_token)
    page = browser.http.get(f"{APP}/builds")
    assert page.status_code == 200, page.text[:300]
    text = page.text
    assert text.index(f'data-build="{newer}"') < text.index(f'data-build="{older}"'), "newest first"
    row = row_of(text, f'data-build="{older}"')
    assert "succeeded" in row
    assert "python" in row
    assert "1m 5s" in row
    assert "dana" in row
    assert DIGEST[:19] + "…" in row
    assert f'href="{APP}/releases/1"' in row
    queued = row_of(text, f'data-build="{newer}"')
    assert "queued" in queued
    assert "erin" in queued
    assert 'aria-current="page" class="current">Builds' in text
    zh = browser.http.get(f"{APP}/builds", headers={"Accept-Language": "zh-CN"}).text
    assert "构建" in zh
    assert "成功" in zh
    assert "排队中" in zh


def test_builds_tab_without_builds(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    browser.login(web_api.admin_token)
    assert 'id="builds-empty"' in browser.http.get(f"{APP}/builds").text


def test_build_page_shows_its_log_and_follows_it_until_it_ends(
    browser: Browser, web_api: Api, tmp_path: Path
) -> None:
    seed(web_api)
    build_id = start_build(web_api, tmp_path)
    finish(web_api, build_id, state="running", started_at=datetime.now(UTC), progress_step="dependencies")
    dev = web_api.member("shop", "dana", "developer")["Authorization"].removeprefix("Bearer ")
    assert 'id="cancel-build-form"' in Browser(web_api).login(dev).http.get(f"{APP}/builds/{build_id}").text
    finish(web_api, build_id, cancel_requested=True)
    asked = Browser(web_api).login(dev).http.get(f"{APP}/builds/{build_id}").text
    assert 'id="cancel-build-form"' not in asked, "a running build already asked to stop"
    assert "cancelling" in asked
    write_log(web_api, build_id, "Collecting flask==3.0.0\n<b>not markup</b>\n")
    browser.login(web_api.admin_token)
    page = browser.http.get(f"{APP}/builds/{build_id}")
    assert page.status_code == 200, page.text[:300]
    assert "Collecting flask==3.0.0" in page.text
    assert "&lt;b&gt;not markup&lt;/b&gt;" in page.text
    poller = re.search(r'hx-get="([^"]+/log\?offset=(\d+)&state=running)"', page.text)
    assert poller, "a running build's page follows its log"
    offset = int(poller.group(2))
    assert offset == len(b"Collecting flask==3.0.0\n<b>not markup</b>\n")
    added = "Successfully installed flask\n"
    write_log(web_api, build_id, added)
    more = browser.http.get(f"{APP}/builds/{build_id}/log?offset={offset}&state=running")
    assert more.status_code == 200
    assert "Successfully installed flask" in more.text
    assert "Collecting" not in more.text, "only the new bytes"
    assert f"log?offset={offset + len(added)}&state=running" in more.text
    # the build ends: the poller reloads the page, which shows how it ended and follows no more
    finish(web_api, build_id, state="failed", finished_at=datetime.now(UTC), error="pip: no such package")
    end = browser.http.get(f"{APP}/builds/{build_id}/log?offset=0&state=running")
    assert end.headers.get("HX-Refresh") == "true"
    final = browser.http.get(f"{APP}/builds/{build_id}").text
    assert "log-poller" not in final
    assert "pip: no such package" in final
    assert "Successfully installed flask" in final
    assert 'id="cancel-build-form"' not in final, "an ended build has nothing to cancel"


def test_a_developer_cancels_a_queued_build_and_the_api_audits_it(
    browser: Browser, web_api: Api, tmp_path: Path
) -> None:
    seed(web_api)
    build_id = start_build(web_api, tmp_path)
    dev = web_api.member("shop", "dana", "developer")["Authorization"].removeprefix("Bearer ")
    browser.login(dev)
    page = browser.http.get(f"{APP}/builds/{build_id}").text
    assert 'id="cancel-build-form"' in page
    assert 'name="csrf_token"' in page.split('id="cancel-build-form"', 1)[1].split("</form>", 1)[0]
    refused = browser.http.post(f"{APP}/builds/{build_id}/cancel", data={"csrf_token": "f" * 64})
    assert refused.status_code == 403
    assert build_state(web_api, build_id) == "queued", "a forged form cancels nothing"
    r = browser.post(f"{APP}/builds/{build_id}/cancel", {})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"{APP}/builds/{build_id}?done=build_cancel"
    assert build_state(web_api, build_id) == "cancelled"
    with web_api.cp.ctx.db.transaction() as s:
        audit = s.scalars(select(AuditEvent).where(AuditEvent.action == "build.cancel")).one()
        assert (audit.actor, audit.target, audit.detail["build"]) == ("dana", "shop/dev/web", build_id)
    after = browser.http.get(r.headers["location"]).text
    assert 'id="done-notice"' in after
    assert 'id="cancel-build-form"' not in after
    assert "cancelled" in after


def test_a_viewer_sees_no_cancel_and_a_forged_cancel_is_refused(
    browser: Browser, web_api: Api, tmp_path: Path
) -> None:
    seed(web_api)
    build_id = start_build(web_api, tmp_path)
    viewer = web_api.member("shop", "vera", "viewer")["Authorization"].removeprefix("Bearer ")
    browser.login(viewer)
    page = browser.http.get(f"{APP}/builds/{build_id}")
    assert page.status_code == 200
    assert 'method="post"' not in page.text.split("<main", 1)[1]
    assert "Cancel build" not in page.text
    assert browser.http.get(f"{APP}/builds").status_code == 200
    r = browser.post(f"{APP}/builds/{build_id}/cancel", {})
    assert r.status_code == 403
    assert build_state(web_api, build_id) == "queued"
    denied = web_api.http.get("/api/v1/audit?outcome=denied&actor=vera", headers=web_api.admin).json()
    assert any(item["action"] == "build.cancel" for item in denied["items"]), denied


def test_a_build_that_is_not_this_apps_is_the_console_404(
    browser: Browser, web_api: Api, tmp_path: Path
) -> None:
    seed(web_api)
    r = web_api.http.post(
        "/api/v1/projects/shop/environments/dev/deployments",
        json={"score": SCORE_API},
        headers=web_api.admin,
    )
    assert r.status_code == 201, r.text
    other = start_build(web_api, tmp_path, app="api")
    browser.login(web_api.admin_token)
    for build_id in ("b000000000000", "nonsense", "B00000000000Z", other):
        page = browser.http.get(f"{APP}/builds/{build_id}")
        assert page.status_code == 404, (build_id, page.text[:300])
        assert "<h1>" in page.text
        assert browser.http.get(f"{APP}/builds/{build_id}/log?offset=0").status_code == 404
    r = browser.post(f"{APP}/builds/{other}/cancel", {})
    assert r.status_code == 404
    assert build_state(web_api, other) == "queued", "cancelled under another app's address"
    assert browser.http.get(f"/projects/shop/dev/apps/api/builds/{other}").status_code == 200


def test_images_tab_lists_the_registry_images_with_the_releases_that_keep_them(
    browser: Browser, web_api: Api
) -> None:
    seed(web_api)
    cp = web_api.cp
    web_score = {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "web"},
        "containers": {"web": {"image": ".", "command": ["python3", "app.py"]}},
    }
    cp.apps.deploy(SYSTEM, "shop", "dev", web_score, {}, None, image=f"shop/web@{DIGEST}")
    now = cp.ctx.clock()
    asked: list[str] = []

    def registry_images(repository: str) -> list[dict[str, Any]]:
        asked.append(repository)
        return [
            {"digest": OTHER_DIGEST, "size": 2048, "pushed_at": now - timedelta(minutes=5), "tags": []},
            {"digest": DIGEST, "size": 4096, "pushed_at": now - timedelta(hours=3, minutes=2),
             "tags": ["latest", "v1"], "signed": True, "sbom": True},
        ]  # fmt: skip

    cp.ctx.registry_images = registry_images
    browser.login(web_api.admin_token)
    page = browser.http.get(f"{APP}/images")
    assert page.status_code == 200, page.text[:300]
    assert asked == ["shop/web"]
    text = page.text
    assert text.index(f'data-digest="{OTHER_DIGEST}"') < text.index(f'data-digest="{DIGEST}"'), "API order"
    kept = row_of(text, f'data-digest="{DIGEST}"')
    assert DIGEST[:19] + "…" in kept
    assert "<code>latest</code>, <code>v1</code>" in kept
    assert "4.0 KiB" in kept
    assert "3h 2m" in kept
    assert f'href="{APP}/releases/2">dev#2</a>' in kept
    assert "yes" in kept
    loose = row_of(text, f'data-digest="{OTHER_DIGEST}"')
    assert "5m" in loose
    assert "may be garbage collected" in loose
    assert 'aria-current="page" class="current">Images' in text
    zh = browser.http.get(f"{APP}/images", headers={"Accept-Language": "zh-CN"}).text
    assert "镜像" in zh
    assert "可能被垃圾回收" in zh


def test_images_tab_says_when_the_registry_cannot_be_reached(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    assert web_api.cp.ctx.registry_images is None
    browser.login(web_api.admin_token)
    page = browser.http.get(f"{APP}/images")
    assert page.status_code == 200, page.text[:300]
    assert 'id="images-unavailable"' in page.text
    assert "not reachable" in page.text
    assert browser.http.get("/projects/shop/dev/apps/nope/images").status_code == 404
