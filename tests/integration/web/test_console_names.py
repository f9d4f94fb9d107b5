"""Names and TLS in the console over the in-process API: the DNS page (providers for admins without their
secret, the records the platform owns coloured by state with their message, a member's view limited to their
projects), an environment's naming rule and TLS set and cleared by a maintainer with the form (read back from
the API), a bad rule shown next to its field with nothing written, a developer without the form whose forged
POST gets 403, and an app's Domains tab (its rule name, custom domains added, verified and removed with their
TXT challenge; problems at the host field; no controls for a viewer); both languages."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from tests.conftest import Api
from tests.integration.web.conftest import Browser
from tests.integration.web.test_console import seed
from yunzhou.store.models import App, DnsRecordRow

APP = "/projects/shop/dev/apps/web"
NAMES_PAGE = "/projects/shop/dev/names"
SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="
PROVIDER = {
    "name": "corp",
    "kind": "rfc2136",
    "settings": {"zones": ["example.test"], "server": "127.0.0.1", "port": 5353, "key_name": "yunzhou"},
    "secret": SECRET,
}
CONFLICT = "orders.prod.shop.example.test already has an A record (192.0.2.1) that Yunzhou did not make"


def add_provider(api: Api) -> None:
    r = api.http.post("/api/v1/dns/providers", json=PROVIDER, headers=api.admin)
    assert r.status_code == 201, r.text


def add_record(
    api: Api, name: str, owner: str, state: str, message: str | None = None, app_id: int | None = None
) -> None:
    """A record row as the names reconciler writes it."""
    with api.cp.ctx.db.transaction() as s:
        s.add(
            DnsRecordRow(
                provider="corp", zone="example.test", name=name, type="A", values=["10.0.0.80"], ttl=300,
                owner=owner, state=state, message=message, updated_at=datetime(2026, 12, 8, tzinfo=UTC),
                app_id=app_id,
            )
        )  # fmt: skip


def token(api: Api, principal: str, role: str) -> str:
    return api.member("shop", principal, role)["Authorization"].removeprefix("Bearer ")


def environment(api: Api) -> dict[str, Any]:
    r = api.http.get("/api/v1/projects/shop/environments/dev", headers=api.admin)
    assert r.status_code == 200, r.text
    return dict(r.json())


def row_of(page: str, marker: str) -> str:
    return page[page.index(marker) :].split("</tr>", 1)[0]


def names_form(**changes: str) -> dict[str, str]:
    form = {
        "provider": "corp", "zone": "example.test", "rule": "", "policy": "sync", "ttl": "", "addresses": "",
        "cname": "", "tls": "off", "tls_issuer": "",
    }  # fmt: skip
    return {**form, **changes}


def test_dns_page_shows_an_admin_the_providers_without_their_secret_and_the_records_by_state(
    browser: Browser, web_api: Api
) -> None:
    seed(web_api)
    add_provider(web_api)
    add_record(web_api, "web.dev.shop.example.test", "shop/dev/web", "synced")
    add_record(web_api, "orders.prod.shop.example.test", "shop/prod/orders", "conflict", CONFLICT)
    add_record(web_api, "old.dev.shop.example.test", "shop/dev/old", "retained")
    add_record(web_api, "api.dev.other.example.test", "other/dev/api", "error", "refused the TSIG signature")
    browser.login(web_api.admin_token)
    page = browser.http.get("/dns")
    assert page.status_code == 200, page.text[:300]
    text = page.text
    assert SECRET not in text
    provider = row_of(text, 'data-provider="corp"')
    assert "RFC 2136" in provider
    assert "127.0.0.1:5353" in provider
    assert "set (never shown)" in provider
    assert 'class="badge dns-synced">synced' in row_of(text, 'data-record="web.dev.shop.example.test/A"')
    conflict = row_of(text, 'data-record="orders.prod.shop.example.test/A"')
    assert 'class="badge dns-conflict">conflict' in conflict
    assert "Yunzhou did not make" in conflict, "the conflict's reason is visible"
    assert 'class="badge dns-retained">retained' in row_of(text, 'data-record="old.dev.shop.example.test/A"')
    error = row_of(text, 'data-record="api.dev.other.example.test/A"')
    assert "dns-error" in error
    assert "refused the TSIG signature" in error
    only = browser.http.get("/dns?state=conflict").text
    assert 'data-record="orders.prod.shop.example.test/A"' in only
    assert 'data-record="web.dev.shop.example.test/A"' not in only
    assert '<a href="/dns">DNS</a>' in text


def test_dns_page_shows_a_member_only_their_projects_records_and_no_providers(
    browser: Browser, web_api: Api
) -> None:
    seed(web_api)
    add_provider(web_api)
    add_record(web_api, "web.dev.shop.example.test", "shop/dev/web", "synced")
    add_record(web_api, "api.dev.other.example.test", "other/dev/api", "error", "refused")
    browser.login(token(web_api, "dana", "developer"))
    page = browser.http.get("/dns")
    assert page.status_code == 200, page.text[:300]
    assert 'id="providers-admins-only"' in page.text
    assert 'id="dns-providers"' not in page.text
    assert 'data-record="web.dev.shop.example.test/A"' in page.text
    assert "other/dev/api" not in page.text


def test_a_maintainer_sets_names_and_tls_with_the_form_and_clears_them(
    browser: Browser, web_api: Api
) -> None:
    seed(web_api)
    add_provider(web_api)
    browser.login(token(web_api, "mia", "maintainer"))
    env_page = browser.http.get("/projects/shop/dev").text
    assert 'id="names-link"' in env_page
    assert "No DNS records are made" in env_page
    form_page = browser.http.get(NAMES_PAGE)
    assert form_page.status_code == 200, form_page.text[:300]
    # a maintainer chooses from the providers' names and zones (GET /dns/zones), never their servers
    assert re.search(r'<select id="f-provider" name="provider"', form_page.text)
    assert '<option value="corp"' in form_page.text
    assert "5353" not in form_page.text  # the server's port is not shown
    version = re.search(r'name="version" value="(\d+)"', form_page.text)
    assert version
    entered = names_form(
        rule="{app}-{env}.{project}.{zone}", policy="upsert-only", ttl="60", addresses="10.0.0.1, 10.0.0.2",
        tls="local", version=version.group(1),
    )  # fmt: skip
    r = browser.post(NAMES_PAGE, entered)
    assert r.status_code == 303, r.text[:500]
    assert r.headers["location"] == "/projects/shop/dev?done=names"
    env = environment(web_api)
    assert env["names"] == {
        "provider": "corp", "zone": "example.test", "rule": "{app}-{env}.{project}.{zone}",
        "policy": "upsert-only", "ttl": 60, "addresses": ["10.0.0.1", "10.0.0.2"],
    }  # fmt: skip
    assert env["tls"] == "local"
    summary = browser.http.get("/projects/shop/dev?done=names").text
    assert 'id="done-notice"' in summary
    assert "<code>{app}-{env}.{project}.{zone}</code>" in summary
    assert "local CA" in summary
    assert "<code>10.0.0.2</code>" in summary
    again = browser.http.get(NAMES_PAGE).text
    assert 'value="{app}-{env}.{project}.{zone}"' in again, "the form shows what is set"
    assert 'id="names-off"' in again
    r = browser.post(NAMES_PAGE, {**entered, "off": "1", "tls": "off", "version": str(env["version"])})
    assert r.status_code == 303, r.text[:500]
    cleared = environment(web_api)
    assert (cleared["names"], cleared["tls"]) == (None, "off")


def test_an_admin_chooses_the_provider_from_a_list(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    add_provider(web_api)
    browser.login(web_api.admin_token)
    page = browser.http.get(NAMES_PAGE).text
    assert '<select id="f-provider" name="provider"' in page
    assert '<option value="corp" >corp (rfc2136: example.test)</option>' in page
    r = browser.post(NAMES_PAGE, names_form(tls="acme"))
    assert r.status_code == 303, r.text[:500]
    env = environment(web_api)
    assert env["names"]["addresses"] == ["127.0.0.1"], "the local target's default"
    assert env["tls"] == "acme"


def test_a_bad_rule_is_shown_next_to_its_field_and_nothing_is_written(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    add_provider(web_api)
    browser.login(token(web_api, "mia", "maintainer"))
    r = browser.post(NAMES_PAGE, names_form(rule="{app}.{zone}", tls="local"))
    assert r.status_code == 422, r.text[:500]
    error = re.search(r'<span id="f-rule-error" class="field-error" role="alert">([^<]+)</span>', r.text)
    assert error, r.text
    assert "names.rule" in error.group(1)
    assert re.search(
        r'<input id="f-rule" name="rule" type="text" value="\{app\}.\{zone\}"[^>]*aria-invalid="true"', r.text
    )
    assert 'id="names-errors"' in r.text
    env = environment(web_api)
    assert (env["names"], env["tls"]) == (None, "off"), "nothing written"
    for field, changes in (
        ("addresses", {"addresses": "10.0.0.1 not-an-ip"}),
        ("zone", {"zone": "other.test"}),
        ("ttl", {"ttl": "soon"}),
        ("tls", {"tls": "cluster-issuer", "tls_issuer": "letsencrypt"}),  # issuers are for clusters
    ):
        r = browser.post(NAMES_PAGE, names_form(**changes))
        assert r.status_code == 422, (field, r.text[:300])
        assert f'id="f-{field}-error"' in r.text, field
    assert environment(web_api)["names"] is None


def test_a_rule_clash_goes_to_the_rule_field_and_a_stale_form_above_it(
    browser: Browser, web_api: Api
) -> None:
    seed(web_api)
    add_provider(web_api)
    with web_api.cp.ctx.db.transaction() as s:
        app_id = s.scalar(select(App.id).where(App.name == "web"))
    # shop/prod/web holds web.shop.example.test; a rule without {env} would give shop/dev/web that name too
    add_record(web_api, "web.shop.example.test", "shop/prod/web", "synced", app_id=app_id)
    browser.login(token(web_api, "mia", "maintainer"))
    r = browser.post(NAMES_PAGE, names_form(rule="{app}.{project}.{zone}"))
    assert r.status_code == 409, r.text[:500]
    error = re.search(r'<span id="f-rule-error" class="field-error" role="alert">([^<]+)</span>', r.text)
    assert error, r.text
    assert "another app owns already" in error.group(1)
    assert environment(web_api)["names"] is None
    # a form opened before someone else changed the environment: said above the form, nothing overwritten
    stale = re.search(r'name="version" value="(\d+)"', browser.http.get(NAMES_PAGE).text)
    assert stale
    r = web_api.http.patch(
        "/api/v1/projects/shop/environments/dev/names", json={"tls": "acme"}, headers=web_api.admin
    )
    assert r.status_code == 200, r.text
    r = browser.post(NAMES_PAGE, names_form(version=stale.group(1)))
    assert r.status_code == 409, r.text[:500]
    assert re.search(r'<p class="error" role="alert">[^<]*version', r.text), r.text
    assert f'name="version" value="{environment(web_api)["version"]}"' in r.text, "the form can be sent again"
    assert (environment(web_api)["names"], environment(web_api)["tls"]) == (None, "acme")


def test_a_developer_sees_the_names_but_no_form_and_a_forged_post_is_refused(
    browser: Browser, web_api: Api
) -> None:
    seed(web_api)
    add_provider(web_api)
    browser.login(token(web_api, "dana", "developer"))
    env_page = browser.http.get("/projects/shop/dev").text
    assert "Names and records" in env_page
    page = browser.http.get(NAMES_PAGE)
    assert page.status_code == 200, page.text[:300]
    assert 'id="names-form"' not in page.text
    assert 'id="names-summary"' in page.text
    r = browser.post(NAMES_PAGE, names_form())
    assert r.status_code == 403, r.text[:300]
    assert environment(web_api)["names"] is None


def _challenge(api: Api, host: str) -> dict[str, str]:
    r = api.http.get("/api/v1/projects/shop/environments/dev/apps/web/domains", headers=api.admin)
    assert r.status_code == 200, r.text
    return next(d["challenge"] for d in r.json()["items"] if d["host"] == host)


def test_domains_tab_adds_verifies_and_removes_a_custom_domain(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    add_provider(web_api)
    add_record(web_api, "web.dev.shop.example.test", "shop/dev/web", "synced")
    browser.login(token(web_api, "dana", "developer"))
    tab = browser.http.get(f"{APP}/domains")
    assert tab.status_code == 200, tab.text[:300]
    assert 'aria-current="page" class="current">Domains' in tab.text
    assert 'data-record="web.dev.shop.example.test/A"' in tab.text, "the app's rule name"
    assert 'id="domains-empty"' in tab.text
    r = browser.post(f"{APP}/domains", {"host": "Shop.Example.com"})
    assert r.status_code == 303, r.text[:500]
    assert r.headers["location"] == f"{APP}/domains?done=domain_add"
    challenge = _challenge(web_api, "shop.example.com")
    assert challenge["name"] == "_yunzhou-challenge.shop.example.com"
    page = browser.http.get(f"{APP}/domains?done=domain_add").text
    row = row_of(page, 'data-domain="shop.example.com"')
    assert 'class="badge domain-pending">pending' in row
    assert challenge["name"] in row
    assert f'data-copy="{challenge["value"]}"' in row, "the TXT value can be copied"
    assert 'class="verify-domain"' in row
    r = browser.post(f"{APP}/domains/verify", {"host": "shop.example.com"})
    assert r.status_code == 303, r.text[:500]
    assert r.headers["location"] == f"{APP}/domains?done=domain_verify"
    # problems at the host field, nothing added
    for host, status, words in (
        ("web.dev.shop.localhost", 422, "base domain"),
        ("not a host", 422, "DNS name"),
        ("", 422, "Give the host name"),
    ):
        r = browser.post(f"{APP}/domains", {"host": host})
        assert r.status_code == status, (host, r.text[:300])
        error = re.search(r'<span id="f-host-error" class="field-error" role="alert">([^<]+)</span>', r.text)
        assert error, (host, r.text[:300])
        assert words in error.group(1), host
    r = browser.post(f"{APP}/domains/remove", {"host": "shop.example.com"})
    assert r.status_code == 303, r.text[:500]
    listed = web_api.http.get(
        "/api/v1/projects/shop/environments/dev/apps/web/domains", headers=web_api.admin
    )
    assert listed.json()["items"] == []


def test_a_host_another_app_asked_for_is_refused_at_the_host_field(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    score = {
        "apiVersion": "score.dev/v1b1", "metadata": {"name": "api"},
        "containers": {"api": {"image": "python:3.11-slim"}},
    }  # fmt: skip
    r = web_api.http.post(
        "/api/v1/projects/shop/environments/dev/deployments", json={"score": score}, headers=web_api.admin
    )
    assert r.status_code == 201, r.text
    r = web_api.http.post(
        "/api/v1/projects/shop/environments/dev/apps/api/domains", json={"host": "shop.example.com"},
        headers=web_api.admin,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    browser.login(web_api.admin_token)
    r = browser.post(f"{APP}/domains", {"host": "shop.example.com"})
    assert r.status_code == 409
    assert 'id="f-host-error"' in r.text
    assert 'value="shop.example.com"' in r.text


def test_a_viewer_sees_the_domains_but_no_controls(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    r = web_api.http.post(
        "/api/v1/projects/shop/environments/dev/apps/web/domains", json={"host": "shop.example.com"},
        headers=web_api.admin,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    browser.login(token(web_api, "vic", "viewer"))
    page = browser.http.get(f"{APP}/domains").text
    assert 'data-domain="shop.example.com"' in page
    assert 'id="domain-form"' not in page
    assert 'class="remove-domain"' not in page
    r = browser.post(f"{APP}/domains/remove", {"host": "shop.example.com"})
    assert r.status_code == 403
    assert len(_challenge(web_api, "shop.example.com")) == 3, "still there"


def test_names_pages_in_chinese(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    add_provider(web_api)
    add_record(web_api, "web.dev.shop.example.test", "shop/dev/web", "synced")
    browser.login(web_api.admin_token)
    zh = {"Accept-Language": "zh-CN"}
    dns = browser.http.get("/dns", headers=zh).text
    assert "平台拥有的记录" in dns
    assert "已同步" in dns
    assert "DNS 提供方" in dns
    names = browser.http.get(NAMES_PAGE, headers=zh).text
    assert "命名规则" in names
    assert "保存命名与 TLS" in names
    tab = browser.http.get(f"{APP}/domains", headers=zh).text
    assert "自定义域名" in tab
    assert "添加域名" in tab
    assert ">域名</a>" in tab
