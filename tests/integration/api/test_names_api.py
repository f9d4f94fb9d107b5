"""Names through the HTTP API: who may do what, and bad input named by field with nothing written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.helpers import score

PROVIDER = {
    "name": "corp",
    "kind": "rfc2136",
    "settings": {"zones": ["example.test"], "server": "127.0.0.1", "port": 5353, "key_name": "yunzhou"},
    "secret": "c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
}
NAMES = "/api/v1/projects/shop/environments/dev/names"


@pytest.fixture
def shop(api: Api) -> Api:
    assert api.http.post("/api/v1/projects", json={"name": "shop"}, headers=api.admin).status_code == 201
    r = api.http.post("/api/v1/projects/shop/environments", json={"name": "dev"}, headers=api.admin)
    assert r.status_code == 201
    return api


def _problem(r: Any) -> str:
    error = r.json()["error"]
    return " ".join(f"{p['path']}: {p['message']}" for p in error["problems"]) or error["message"]


def test_only_admins_add_providers_and_the_secret_never_comes_back(shop: Api) -> None:
    maintainer = shop.member("shop", "mia", "maintainer")
    assert shop.http.post("/api/v1/dns/providers", json=PROVIDER, headers=maintainer).status_code == 403
    r = shop.http.post("/api/v1/dns/providers", json=PROVIDER, headers=shop.admin)
    assert r.status_code == 201, r.text
    assert r.json()["has_secret"] is True
    listed = shop.http.get("/api/v1/dns/providers", headers=shop.admin)
    assert PROVIDER["secret"] not in listed.text
    assert shop.http.get("/api/v1/dns/providers", headers=maintainer).status_code == 403
    again = shop.http.post("/api/v1/dns/providers", json=PROVIDER, headers=shop.admin)
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "route53"}, "kind"),
        ({"settings": {"server": "127.0.0.1", "key_name": "k"}}, "settings.zones"),
        ({"settings": {**PROVIDER["settings"], "server": "ns1.example.test"}}, "settings.server"),
        ({"settings": {**PROVIDER["settings"], "key_algorithm": "hmac-md5"}}, "settings.key_algorithm"),
        ({"settings": {**PROVIDER["settings"], "api_url": "http://x"}}, "settings.api_url"),
        ({"secret": None}, "secret"),
    ],
)
def test_a_bad_provider_is_refused_naming_the_field_and_nothing_is_written(
    shop: Api, change: dict[str, Any], field: str
) -> None:
    r = shop.http.post("/api/v1/dns/providers", json={**PROVIDER, **change}, headers=shop.admin)
    assert r.status_code == 422, r.text
    assert field in _problem(r)
    assert shop.http.get("/api/v1/dns/providers", headers=shop.admin).json()["items"] == []


@pytest.mark.parametrize(
    ("names", "field"),
    [
        ({"provider": "nope", "zone": "example.test"}, "names.provider"),
        ({"provider": "corp", "zone": "other.test"}, "names.zone"),
        ({"provider": "corp", "zone": "example.test", "rule": "{app}.{zone}"}, "names.rule"),
        ({"provider": "corp", "zone": "example.test", "rule": "{app}.{project}.evil.test"}, "names.rule"),
        ({"provider": "corp", "zone": "example.test", "rule": "{app}.{project}.{host}.{zone}"}, "names.rule"),
        ({"provider": "corp", "zone": "example.test", "policy": "delete-all"}, "names.policy"),
        ({"provider": "corp", "zone": "example.test", "ttl": 0}, "names.ttl"),
        ({"provider": "corp", "zone": "example.test", "addresses": ["not-an-ip"]}, "names.addresses.0"),
        (
            {"provider": "corp", "zone": "example.test", "addresses": ["10.0.0.1"], "cname": "a.test"},
            "names.cname",
        ),
    ],
)
def test_bad_names_are_refused_naming_the_field_and_nothing_is_written(
    shop: Api, names: dict[str, Any], field: str
) -> None:
    assert shop.http.post("/api/v1/dns/providers", json=PROVIDER, headers=shop.admin).status_code == 201
    r = shop.http.patch(NAMES, json={"names": names}, headers=shop.admin)
    assert r.status_code == 422, r.text
    assert field in _problem(r)
    env = shop.http.get("/api/v1/projects/shop/environments/dev", headers=shop.admin).json()
    assert env["names"] is None


def test_names_and_tls_are_set_by_maintainers_and_cleared(shop: Api) -> None:
    assert shop.http.post("/api/v1/dns/providers", json=PROVIDER, headers=shop.admin).status_code == 201
    developer = shop.member("shop", "dev1", "developer")
    maintainer = shop.member("shop", "mia", "maintainer")
    names = {"provider": "corp", "zone": "Example.Test."}
    assert shop.http.patch(NAMES, json={"names": names}, headers=developer).status_code == 403
    r = shop.http.patch(NAMES, json={"names": names, "tls": "local"}, headers=maintainer)
    assert r.status_code == 200, r.text
    env = r.json()
    assert env["names"] == {
        "provider": "corp", "zone": "example.test", "rule": "{app}.{env}.{project}.{zone}",
        "policy": "sync", "ttl": 300, "addresses": ["127.0.0.1"],
    }  # fmt: skip
    assert env["tls"] == "local"
    # a provider in use cannot go
    gone = shop.http.delete("/api/v1/dns/providers/corp", headers=shop.admin)
    assert gone.status_code == 409
    assert "shop/dev" in gone.text
    # tls alone leaves names as they are; a cert-manager issuer is for clusters only
    assert shop.http.patch(NAMES, json={"tls": "off"}, headers=maintainer).json()["names"] == env["names"]
    bad = shop.http.patch(NAMES, json={"tls": "cluster-issuer:letsencrypt"}, headers=maintainer)
    assert bad.status_code == 422
    assert "tls" in _problem(bad)
    cleared = shop.http.patch(NAMES, json={"names": None}, headers=maintainer).json()
    assert (cleared["names"], cleared["tls"]) == (None, "off")
    assert shop.http.delete("/api/v1/dns/providers/corp", headers=shop.admin).status_code == 204


def test_custom_domains_by_role_and_one_app_per_host(shop: Api) -> None:
    r = shop.http.post(
        "/api/v1/projects/shop/environments/dev/deployments", json={"score": score()}, headers=shop.admin
    )
    assert r.status_code == 201
    domains = "/api/v1/projects/shop/environments/dev/apps/orders/domains"
    viewer = shop.member("shop", "vic", "viewer")
    developer = shop.member("shop", "dev1", "developer")
    assert shop.http.post(domains, json={"host": "shop.example.com"}, headers=viewer).status_code == 403
    added = shop.http.post(domains, json={"host": "Shop.Example.com"}, headers=developer)
    assert added.status_code == 201, added.text
    body = added.json()
    assert (body["host"], body["state"]) == ("shop.example.com", "pending")
    assert body["challenge"]["value"].startswith("yunzhou-verification=")
    assert shop.http.get(domains, headers=viewer).json()["items"][0]["host"] == "shop.example.com"
    under_base = shop.http.post(domains, json={"host": "x.dev.shop.localhost"}, headers=developer)
    assert under_base.status_code == 422
    assert "host" in _problem(under_base)
    assert shop.http.delete(f"{domains}/shop.example.com", headers=developer).status_code == 204
    assert shop.http.get(domains, headers=viewer).json()["items"] == []
