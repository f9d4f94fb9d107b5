"""The deploy form's Score mode in a real browser: a Score file and the app's archive chosen with the file
inputs, settings typed beside them; the app is deployed from the uploaded file, runs behind the router, and
its release holds what the file said. A file that is not valid Score is refused at the field."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.web.conftest import APP_SOURCE, DEADLINE_MS, login
from yunzhou.client import YunzhouClient, build_artifact
from yunzhou.testing import ControlPlaneProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCORE = """\
apiVersion: score.dev/v1b1
metadata:
  name: uploaded
containers:
  web:
    image: python:3.11-slim
    command: ["python3", "app.py"]
    variables:
      APP_VERSION: from-file
service:
  ports:
    web: {port: 8080, targetPort: 8080}
"""


def test_score_file_upload_deploys_the_app(
    server: ControlPlaneProcess, browser: Browser, tokens: dict[str, str], tmp_path: Path
) -> None:
    score_file, archive, broken = tmp_path / "score.yaml", tmp_path / "app.tgz", tmp_path / "broken.yaml"
    score_file.write_text(SCORE)
    archive.write_bytes(build_artifact(APP_SOURCE))
    broken.write_text("apiVersion: score.dev/v1b1\nmetadata: [not, a, mapping\n")
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    login(page, server, tokens["dana"])
    page.goto(f"{server.url}/projects/shop/dev/deploy")
    page.get_by_role("link", name="Score file", exact=True).click()
    expect(page).to_have_url(re.compile(r"mode=score"))

    # a file that is not YAML: refused at the Score field, nothing deployed
    page.get_by_label("Score file to upload").set_input_files(str(broken))
    page.locator("#deploy-submit").click()
    expect(page.locator("#f-score-error")).to_be_visible()
    expect(page.get_by_label("Score file (YAML)")).to_have_attribute("aria-invalid", "true")
    with YunzhouClient(server.url, tokens["dana"]) as dana:
        assert dana.list_apps("shop", "dev") == []

    # the real file, the app's archive and settings typed beside them
    page.get_by_label("Score file (YAML)").fill("")
    page.get_by_label("Score file to upload").set_input_files(str(score_file))
    page.get_by_label("Platform settings (YAML, optional)").fill("replicas: 1\n")
    page.get_by_label("Source archive (.tar.gz)").set_input_files(str(archive))
    page.locator("#deploy-submit").click()
    expect(page).to_have_url(re.compile(r"/apps/uploaded/overview\?done=deploy&release=1"))
    expect(page.locator("#rollout-state")).to_have_text("succeeded", timeout=DEADLINE_MS)

    with YunzhouClient(server.url, tokens["dana"]) as dana:
        release = dana.get_release("shop", "dev", "uploaded", 1)
    assert release["score"]["containers"]["web"]["variables"] == {"APP_VERSION": "from-file"}
    assert release["artifact"]
    answer = httpx.get(
        f"http://127.0.0.1:{server.router_port}/", headers={"Host": "uploaded.dev.shop.localhost"}, timeout=10
    )
    assert answer.json()["version"] == "from-file"
    context.close()
