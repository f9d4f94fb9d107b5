"""A canary analysis' custom query, evaluated on the server's metrics engine: a real control plane (its
scrape loop and embedded engine), its router and real app processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.local.test_traffic import APPS, DEADLINE, Load, deploy, mesh_score
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess

HOST = "qshop.dev.shop.localhost"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    # scrape every second so the engine has the canary's requests within the step's window
    with ControlPlaneProcess(
        tmp_path / "data", env={"YUNZHOU_SCRAPE_INTERVAL": "1"}, host_processes=True
    ) as cp:
        yield cp


@pytest.fixture
def client(server: ControlPlaneProcess) -> Iterator[YunzhouClient]:
    with YunzhouClient(server.url, server.admin_token) as c:
        c.create_project("shop")
        c.create_environment("shop", "dev")
        yield c


def canary(query: str, max_value: float, window: str) -> dict[str, Any]:
    step = {"weight": 50, "analysis": {"window": window, "query": query, "maxValue": max_value}}
    return {"replicas": 1, "rollout": {"strategy": "canary", "steps": [step]}}


def roll(client: YunzhouClient, settings: dict[str, Any], version: str, **env: str) -> dict[str, Any]:
    result = client.deploy(
        "shop", "dev", mesh_score("qshop", version, **env), settings, client.upload_artifact(APPS / "mesh")
    )
    done: dict[str, Any] = client.wait_for_rollout(
        "shop", "dev", "qshop", result["rollout"]["id"], timeout=DEADLINE, interval=0.1
    )
    return done


def errors_of(release: int) -> str:
    labels = f'project="shop",env="dev",app="qshop",release="{release}",code="5xx"'
    return f"sum(yunzhou_router_requests_total{{{labels}}})"


def test_the_query_aborts_above_its_max_value_waits_on_no_data_and_passes_otherwise(
    server: ControlPlaneProcess, client: YunzhouClient
) -> None:
    deploy(client, "qshop", canary(errors_of(1), 3, "30s"), "v1")  # first release: rolling
    with Load(server.router_port, HOST) as load:
        # release 2 fails half its requests: its 5xx count passes 3 long before the 30 s window ends
        # (the analysis has no maxErrorRate: only the query can abort it)
        done = roll(client, canary(errors_of(2), 3, "30s"), "v2", ERROR_RATE="0.5")
        assert done["state"] == "failed", done
        assert "canary aborted at step 1 (50%): query 'sum(yunzhou_router_requests_total{" in done["message"]
        assert "> maxValue 3" in done["message"], done

        # a series that does not exist: no data through the window, then an abort that says so
        missing = 'sum(no_such_series_total{release="3"})'
        done = roll(client, canary(missing, 1, "3s"), "v3")
        assert done["state"] == "failed", done
        assert done["message"] == f"canary aborted at step 1 (50%): no data for query {missing!r}", done

        # data within maxValue: the step passes at the end of its window and the canary is promoted
        total = 'sum(yunzhou_router_requests_total{project="shop",env="dev",app="qshop",release="4"})'
        done = roll(client, canary(total, 1e9, "3s"), "v4")
        assert done["state"] == "succeeded", done
    assert (200, "v4") in load.results
    assert all(status == 200 for status, version in load.results if version == "v1")
