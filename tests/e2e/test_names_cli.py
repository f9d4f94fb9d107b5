"""A platform admin connects the company's DNS (a real BIND and a real PowerDNS) to a real `yunzhou server`
through the CLI; a maintainer names an environment's apps by rule; a new app gets its record (dig against
BIND; the PowerDNS API and dig against PowerDNS), the router serves the app under that name, and removing
the app removes the record. The local provider makes the name resolve through a hosts file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.local.test_local_runtime import wait_until
from yunzhou.names.dns import PowerDnsProvider, PowerDnsSettings, Rfc2136Provider
from yunzhou.testing import ControlPlaneProcess
from yunzhou.testing.dns_servers import ZONE, BindServer, PowerDnsServer

pytestmark = pytest.mark.e2e
APP_DIR = Path(__file__).resolve().parents[1] / "integration" / "local" / "apps" / "web"
SCORE = {
    "apiVersion": "score.dev/v1b1",
    "metadata": {"name": "orders"},
    "containers": {"web": {"image": "python:3.11-slim", "command": ["python3", "app.py"]}},
    "service": {"ports": {"web": {"port": 8080}}},
}


def _dig(port: int, name: str, type: str = "A") -> list[str]:
    out = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(port), name, type, "+short", "+tcp", "+time=5", "+tries=2"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return sorted(out.stdout.split())


def test_names_through_the_cli_at_bind_powerdns_and_the_local_provider(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n")
    env = {"YUNZHOU_NAMES_INTERVAL": "0.5", "YUNZHOU_HOSTS_FILE": str(hosts)}
    with BindServer(tmp_path / "bind") as bind, PowerDnsServer(tmp_path / "pdns") as pdns:
        env["YUNZHOU_DNS_RESOLVER"] = f"127.0.0.1:{bind.dns_port}"  # custom domains' TXT lookups
        with ControlPlaneProcess(tmp_path / "data", env=env, host_processes=True) as server:
            _use_the_cli(tmp_path, server, bind, pdns, hosts)


def _use_the_cli(
    tmp_path: Path, server: ControlPlaneProcess, bind: BindServer, pdns: PowerDnsServer, hosts: Path
) -> None:
    def cli(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "yunzhou", *args], env=server.client_env() | {"COLUMNS": "250"},
            capture_output=True, text=True, timeout=120, input=stdin, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def cli_json(*args: str) -> Any:
        return json.loads(cli(*args, "-o", "json"))

    def fails(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "yunzhou", *args], env=server.client_env() | {"COLUMNS": "250"},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode != 0, done.stdout
        return done.stderr

    secret = tmp_path / "tsig.key"
    secret.write_text(bind.key_secret + "\n")
    cli(
        "dns", "provider", "add", "corp-bind", "--kind", "rfc2136", "--zone", ZONE,
        "--server", "127.0.0.1", "--port", str(bind.dns_port), "--key-name", bind.key_name,
        "--key-algorithm", bind.key_algorithm, "--secret-file", str(secret),
    )  # fmt: skip
    cli(
        "dns", "provider", "add", "corp-pdns", "--kind", "powerdns", "--zone", ZONE,
        "--api-url", pdns.api_url, "--secret-file", "-", stdin=pdns.api_key,
    )  # fmt: skip
    cli("dns", "provider", "add", "machine", "--kind", "local", "--zone", "yunzhou.test")
    providers = {p["name"]: p for p in cli_json("dns", "providers")}
    assert set(providers) == {"corp-bind", "corp-pdns", "machine"}
    assert bind.key_secret not in json.dumps(providers)  # never shown back

    cli("project", "create", "shop")
    for env_name in ("prod", "staging", "dev"):
        cli("env", "create", f"shop/{env_name}")
    # a rule without {project} could give two projects' apps one name: refused, naming the field
    assert "names.rule" in fails("env", "names", "shop/prod", "--provider", "corp-bind", "--zone", ZONE,
                                 "--rule", "{app}.{zone}")  # fmt: skip
    cli("env", "names", "shop/prod", "--provider", "corp-bind", "--zone", ZONE, "--address", "127.0.0.1")
    cli("env", "names", "shop/staging", "--provider", "corp-pdns", "--zone", ZONE,
        "--rule", "{app}-{env}.{project}.{zone}", "--address", "127.0.0.1")  # fmt: skip
    cli("env", "names", "shop/dev", "--provider", "machine", "--zone", "yunzhou.test")
    assert cli_json("env", "show", "shop/prod")["names"]["provider"] == "corp-bind"

    score_file = tmp_path / "score.yaml"
    score_file.write_text(yaml.safe_dump(SCORE))
    for env_name in ("prod", "staging", "dev"):
        cli("deploy", f"shop/{env_name}", "-f", str(score_file), "--source", str(APP_DIR), "--wait")

    prod_name, staging_name = f"orders.prod.shop.{ZONE}", f"orders-staging.shop.{ZONE}"
    wait_until("BIND answers the prod name", lambda: _dig(bind.dns_port, prod_name) == ["127.0.0.1"])
    wait_until(
        "PowerDNS answers the staging name", lambda: _dig(pdns.dns_port, staging_name) == ["127.0.0.1"]
    )
    api = PowerDnsProvider(PowerDnsSettings(pdns.api_url, pdns.api_key))
    assert [r.values for r in api.list_records(ZONE) if r.name == staging_name] == [("127.0.0.1",)]
    wait_until("the hosts file has the dev name", lambda: "orders.dev.shop.yunzhou.test" in hosts.read_text())
    records = {r["name"]: r for r in cli_json("dns", "records")}
    assert records[prod_name]["state"] == "synced"
    assert records[prod_name]["owner"] == "shop/prod/orders"

    # the router serves the app under its rule name, as under its default host
    router = f"http://127.0.0.1:{server.router_port}/"
    for name in (prod_name, staging_name, "orders.dev.shop.yunzhou.test"):
        answer = wait_until(
            f"the router to serve {name}",
            lambda name=name: (
                (r := httpx.get(router, headers={"Host": name}, timeout=10)).status_code == 200 and r
            ),
        )
        assert answer.json()["version"]

    cli("remove", "shop/prod/orders")
    wait_until("BIND no longer answers the prod name", lambda: _dig(bind.dns_port, prod_name) == [])
    assert prod_name not in {r["name"] for r in cli_json("dns", "records")}
    # a provider still in use cannot be removed
    assert "shop/staging" in fails("dns", "provider", "remove", "corp-pdns")

    # a custom domain is served once its TXT record is seen
    custom = f"shop.{ZONE}"
    asked = json.loads(cli("custom-domains", "add", "shop/staging/orders", custom, "-o", "json"))
    assert asked["state"] == "pending"
    assert "Not verified" in fails("custom-domains", "verify", "shop/staging/orders", custom, "--wait",
                                   "--timeout", "2")  # fmt: skip
    assert httpx.get(router, headers={"Host": custom}, timeout=10).status_code == 404
    bind_provider = Rfc2136Provider(bind.rfc2136_settings())
    bind_provider.upsert(ZONE, asked["challenge"]["name"], "TXT", [asked["challenge"]["value"]], 60)
    assert "is verified" in cli("custom-domains", "verify", "shop/staging/orders", custom, "--wait")
    served = wait_until(
        "the router to serve the custom domain",
        lambda: (r := httpx.get(router, headers={"Host": custom}, timeout=10)).status_code == 200 and r,
    )
    assert served.json()["version"]
    assert [d["state"] for d in cli_json("custom-domains", "list", "shop/staging/orders")] == ["verified"]
