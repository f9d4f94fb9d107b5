"""`yunzhou observe` through the real client against the in-process API over the real store and engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.conftest import Api
from tests.integration.observe.metrics_wiring.conftest import END, T0
from tests.unit.cli.conftest import CLEAN_ENV
from yunzhou.cli import CliState, app
from yunzhou.client import ClientConfig
from yunzhou.observe.metrics.collect import ScrapeLoop

Run = Callable[..., Result]


def in_process(api: Api) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        r = api.http.request(request.method, request.url.raw_path.decode(), headers=dict(request.headers))
        return httpx.Response(r.status_code, headers=r.headers, content=r.content)

    return httpx.MockTransport(handle)


@pytest.fixture
def run(shop: tuple[Api, ScrapeLoop], tmp_path: Path) -> Run:
    api, _ = shop

    def invoke(*args: str) -> Result:
        state = CliState(transport=in_process(api), sleep=lambda _: None)
        state.config = ClientConfig(url="http://yunzhou.test:7070", token=api.admin_token,
                                    auth_source="YUNZHOU_TOKEN", data_dir=tmp_path)  # fmt: skip
        result = CliRunner().invoke(app, list(args), obj=state, env=CLEAN_ENV)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


RATE = 'sum by (code) (rate(yunzhou_router_requests_total{app="orders"}[1m]))'


def test_query_as_table_and_json(run: Run) -> None:
    table = run("observe", "query", RATE, "--time", str(END))
    assert table.exit_code == 0, table.output
    assert '{code="2xx"}' in table.stdout
    assert "4.5" in table.stdout
    raw = run("observe", "query", RATE, "--time", str(END), "-o", "json")
    data = json.loads(raw.stdout)
    assert data["resultType"] == "vector"
    assert {s["metric"]["code"]: float(s["value"][1]) for s in data["result"]}["5xx"] == pytest.approx(0.5)


def test_query_range(run: Run) -> None:
    result = run("observe", "query-range", "sum(yunzhou_instance_memory_bytes)", "--start", str(T0 + 600),
                 "--end", str(END), "--step", "60", "-o", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    values = json.loads(result.stdout)["result"][0]["values"]
    assert [float(v) for _, v in values] == [100 << 20] * 6
    text = run("observe", "query-range", "sum(yunzhou_instance_memory_bytes)", "--start", str(T0 + 600),
               "--end", str(END), "--step", "60")  # fmt: skip
    assert "2023-11-14T22:23:20Z  104857600" in text.stdout


def test_a_bad_query_is_an_error_naming_the_query(run: Run) -> None:
    result = run("observe", "query", "sum(rate(")
    assert result.exit_code == 1
    assert "query" in result.stderr
    assert "Traceback" not in result.output


def test_prometheus_config(run: Run, tmp_path: Path) -> None:
    result = run("observe", "prometheus-config", "--interval", "15s")
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(result.stdout)
    [job] = config["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["yunzhou.test:7070"]}]
    assert job["authorization"] == {
        "type": "Bearer",
        "credentials_file": str((tmp_path / "admin-token").resolve()),
    }
    assert job["scrape_interval"] == "15s"
    as_json = json.loads(
        run("observe", "prometheus-config", "-o", "json", "--url", "https://yz.example:8443/base").stdout
    )
    job = as_json["scrape_configs"][0]
    assert (job["scheme"], job["metrics_path"], job["static_configs"][0]["targets"]) == (
        "https",
        "/base/metrics",
        ["yz.example:8443"],
    )
    refused = run("observe", "prometheus-config", "--interval", "soon")
    assert refused.exit_code != 0
    assert "--interval" in refused.output


def test_app_charts(run: Run) -> None:
    result = run("observe", "app", "shop/dev/orders", "--window", "15m", "--end", str(END))
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[2:] if line.strip()}
    assert set(lines) >= {"Requests", "Memory", "CPU", "Latency"}
    assert "100.0 MiB" in lines["Memory"]
    missing = run("observe", "app", "shop/dev/nope")
    assert missing.exit_code == 1
    assert "yunzhou apps shop/dev" in missing.stderr
    bad = run("observe", "app", "shop/dev/orders", "--window", "2h", "-o", "json")
    assert bad.exit_code == 1
    assert "query.window" in bad.stderr
