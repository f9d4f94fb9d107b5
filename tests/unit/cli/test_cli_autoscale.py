"""``yunzhou autoscale simulate``: a trace file in, the simulator's numbers out (no server needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.unit.cli.conftest import CLEAN_ENV, URL, Run
from yunzhou.cli import CliState, app
from yunzhou.client import ClientConfig


def write_trace(path: Path) -> Path:
    rows = ["timestamp,demand"] + [f"{1_700_000_000 + i},{10 if i < 300 else 40}" for i in range(600)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_simulate_prints_json_with_the_timeline(run: Run, tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "trace.csv")
    result = run(
        "autoscale", "simulate", "--trace", str(trace), "--policy", "hpa",
        "--capacity-per-instance", "10", "--target", "10", "--startup-seconds", "30", "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # the step by hand: see tests/unit/domain/autoscale/test_simulate.py
    assert data["underprovisioned_seconds"] == 60
    assert data["instance_seconds"] == 1440
    assert data["actions"] == 2
    assert data["timeline"][21] == {"t": 315.0, "demand": 40.0, "desired": 3, "ready": 1}
    assert data["policy"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_simulate_a_settings_file_and_text_output(run: Run, tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "trace.csv")
    settings = tmp_path / "yunzhou.yaml"
    settings.write_text(
        "autoscaling:\n  maxReplicas: 3\n  metrics:\n"
        "    - {type: rps, target: {type: AverageValue, averageValue: 10}}\n"
    )
    result = run(
        "autoscale", "simulate", "--trace", str(trace), "--policy", "settings", "--settings", str(settings),
        "--capacity-per-instance", "10",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("under-provisioned seconds"))
    assert line.split()[-1] == "300"  # capped at 3 instances (30 rps < 40) from 300 s to the end


def test_a_bad_trace_names_the_row(run: Run, tmp_path: Path) -> None:
    trace = tmp_path / "bad.csv"
    trace.write_text("1,5\n2,oops\n")
    result = run("autoscale", "simulate", "--trace", str(trace))
    assert result.exit_code == 1
    assert "trace.row.2" in result.output


def test_simulate_runs_a_builtin_policy_as_the_benchmark_does(run: Run, tmp_path: Path) -> None:
    # hpa-5s samples every 5 s on a 10 s rate (builtin_run_options): the step at 300 s is seen one
    # 5 s cycle after it, not at the next 15 s cycle as hpa sees it
    trace = write_trace(tmp_path / "trace.csv")
    args = ["--capacity-per-instance", "10", "--target", "10", "--startup-seconds", "30", "-o", "json"]
    slow = json.loads(run("autoscale", "simulate", "--trace", str(trace), "--policy", "hpa", *args).stdout)
    fast = json.loads(run("autoscale", "simulate", "--trace", str(trace), "--policy", "hpa-5s", *args).stdout)
    assert fast["timeline"][1]["t"] - fast["timeline"][0]["t"] == 5.0
    assert slow["timeline"][1]["t"] - slow["timeline"][0]["t"] == 15.0
    assert fast["underprovisioned_seconds"] < slow["underprovisioned_seconds"]


DECISIONS_IN_DOCS = re.findall(
    r"^\$ yunzhou autoscale decisions shop/dev/orders\n(.*?)^```",
    (Path(__file__).resolve().parents[3] / "docs" / "autoscaling.md").read_text(),
    re.MULTILINE | re.DOTALL,
)


def _api_time(shown: str) -> str:
    """The API's time for one the doc shows, which must be the CLI's: RFC 3339 UTC to the second."""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown), f"the CLI prints {shown!r} otherwise"
    return shown.replace("Z", ".250000Z")


def _cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


@pytest.mark.parametrize("shown", DECISIONS_IN_DOCS)
def test_the_decisions_tables_in_autoscaling_md_are_what_the_cli_prints(shown: str) -> None:
    header, *rows = [_cells(line) for line in shown.splitlines()]
    decisions = [
        {"time": _api_time(time), "current": int(current), "desired": int(desired),
         "applied": applied == "yes", "mode": mode, "reason": reason}
        for time, current, desired, applied, mode, reason in rows
    ]  # fmt: skip

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/projects/shop/environments/dev/apps/orders/autoscaling/decisions"
        return httpx.Response(200, json={"items": decisions})

    state = CliState(transport=httpx.MockTransport(answer))
    state.config = ClientConfig(url=URL, token="t", auth_source="YUNZHOU_TOKEN")
    result = CliRunner().invoke(app, ["autoscale", "decisions", "shop/dev/orders"], obj=state, env=CLEAN_ENV)
    assert result.exit_code == 0, result.output
    printed = [_cells(line) for line in result.stdout.splitlines() if line.strip() and "─" not in line]
    assert printed == [header, *rows]
