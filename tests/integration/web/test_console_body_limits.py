"""Console forms are bounded too (#14 security 4): a form without a session is sent to the login page
before its body is read; a signed-in form over the limit is refused with 413 naming the limit, and the
deploy form (which may carry an archive) has the archive limit on top."""

from __future__ import annotations

from tests.conftest import Api
from tests.integration.web.conftest import Browser
from yunzhou.domain.limits import Limits
from yunzhou.store.models import Project


def test_a_form_without_a_session_goes_to_the_login_page_unread(browser: Browser) -> None:
    r = browser.http.post("/projects", content=b"name=" + b"x" * 100_000)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login")


def test_a_signed_in_form_over_the_limit_is_413_and_creates_nothing(web_api: Api, browser: Browser) -> None:
    browser.login(web_api.admin_token)
    web_api.cp.ctx.limits = Limits(form_body=4096)
    r = browser.post("/projects", {"name": "shop", "description": "x" * 8000})
    assert r.status_code == 413, r.text
    assert "a console form may be at most 4 KiB (server setting YUNZHOU_MAX_FORM_BODY)" in r.text
    with web_api.cp.ctx.db.transaction() as s:
        assert s.query(Project).count() == 0


def test_the_deploy_form_may_carry_an_archive_up_to_the_archive_limit(web_api: Api, browser: Browser) -> None:
    browser.login(web_api.admin_token)
    web_api.cp.ctx.limits = Limits(form_body=4096, artifact_body=64 * 1024)
    archive = ("site.tar.gz", b"\x1f\x8b" + bytes(128 * 1024), "application/gzip")
    r = browser.http.post(
        "/projects/shop/dev/deploy",
        data={"csrf_token": browser.csrf("/projects")},
        files={"source_archive": archive},
    )
    assert r.status_code == 413, r.text
    assert "the deploy form may be at most 68 KiB" in r.text
