"""`yunzhou autoscale simulate --app`: replays an app's recorded request rate from the server's real
metrics engine through a policy ("what would this policy have done in the last hour?")."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import Api
from tests.integration.observe.test_logs_cli import in_process
from tests.unit.cli.conftest import CLEAN_ENV
from yunzhou.cli import CliState, app
from yunzhou.client import ClientConfig
from yunzhou.observe.metrics import MetricStore, QueryEngine

LABELS = {"project": "shop", "env": "dev", "app": "orders", "release": "1", "code": "2xx"}


def test_replay_the_last_hour(api: Api, tmp_path: Path) -> None:
    store = MetricStore.open(None)
    api.http.app.state.metrics = QueryEngine(store)  # type: ignore[attr-defined]
    now = time.time()
    total = 0.0
    for i in range(360):  # an hour of 10 s scrapes: 20 rps, then 60 rps for the last 20 minutes
        t = now - 3600 + i * 10
        total += (20 if i < 240 else 60) * 10
        store.append("yunzhou_router_requests_total", LABELS, total, t)
    state = CliState(transport=in_process(api))
    state.config = ClientConfig(
        url="http://yunzhou.test", token=api.admin_token, auth_source="YUNZHOU_TOKEN", data_dir=tmp_path
    )
    result = CliRunner().invoke(
        app,
        ["autoscale", "simulate", "--app", "shop/dev/orders", "--since", "1h", "--policy", "hpa",
         "--capacity-per-instance", "10", "--target", "10", "-o", "json"],
        obj=state,
        env=CLEAN_ENV,
    )  # fmt: skip
    store.close()
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    demands = [row["demand"] for row in data["timeline"]]
    assert 19 <= demands[len(demands) // 3] <= 21
    assert 59 <= demands[-5] <= 61
    assert data["timeline"][-5]["desired"] == 6  # ceil(60 / 10)
    assert data["actions"] >= 1

    refused = CliRunner().invoke(
        app, ["autoscale", "simulate", "--app", "shop/dev/orders", "--since", "0d"], obj=state
    )
    assert refused.exit_code != 0
