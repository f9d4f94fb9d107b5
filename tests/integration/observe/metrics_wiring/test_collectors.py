"""Collectors against real inputs: this host's /proc, real HTTP endpoints serving good and bad text, and
cgroup files laid out as the kernel lays them out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from yunzhou.observe.metrics.collect_host import HostCollector
from yunzhou.observe.metrics.collect_instances import (
    AppScrapeCollector,
    InstanceCollector,
    InstanceSample,
    cgroup_cpu_limit,
    cgroup_cpu_throttling,
    cgroup_memory,
)

GOOD = (
    b"# TYPE orders_total counter\n"
    b'orders_total{kind="book",instance="app-set",job="spoof"} 7\n'
    b"queue_depth 3\n"
)
BAD = b"orders_total{kind=book} 7\n"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = {"/good": GOOD, "/bad": BAD}.get(self.path)
        self.send_response(200 if body is not None else 500)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def _instance(
    name: str, port: int | None, path: str | None, *, ready: bool = True, **kw: object
) -> InstanceSample:
    values: dict[str, object] = {"cpu_seconds": 1.5, "memory_bytes": 1000, "restarts": 0}
    values.update(kw)
    return InstanceSample(app="shop/dev/orders", instance=name, release=2, ready=ready, port=port,
                          metrics_path=path, **values)  # type: ignore[arg-type]  # fmt: skip


def test_host_metrics_from_proc_and_statvfs(tmp_path: Path) -> None:
    samples = list(HostCollector((Path("/"), tmp_path)).collect(0.0))
    names = {s.name for s in samples}
    assert names >= {"yunzhou_host_cpu_seconds_total", "yunzhou_host_memory_bytes", "yunzhou_host_disk_bytes"}
    modes = {s.labels["mode"] for s in samples if s.name == "yunzhou_host_cpu_seconds_total"}
    assert {"user", "system", "idle"} <= modes
    memory = {s.labels["kind"]: s.value for s in samples if s.name == "yunzhou_host_memory_bytes"}
    assert 0 < memory["available"] <= memory["total"]
    disk = [s for s in samples if s.name == "yunzhou_host_disk_bytes"]
    assert {s.labels["kind"] for s in disk} == {"total", "free"}
    assert all(s.value >= 0 for s in disk)


def test_app_endpoints_are_scraped_with_labels_and_bad_ones_counted(endpoint: int) -> None:
    instances = [
        _instance("good-1", endpoint, "/good"),
        _instance("bad-1", endpoint, "/bad"),
        _instance("err-1", endpoint, "/missing"),
        _instance("down-1", 1, "/good"),
        _instance("notready-1", endpoint, "/good", ready=False),
        _instance("undeclared-1", endpoint, None),
    ]
    collector = AppScrapeCollector(lambda: instances, timeout=1.0)
    try:
        for _ in range(2):
            samples = list(collector.collect(0.0))
    finally:
        collector.close()
    orders = [s for s in samples if s.name == "orders_total"]
    assert [dict(s.labels) for s in orders] == [
        {
            "kind": "book",
            "instance": "good-1",
            "project": "shop",
            "env": "dev",
            "app": "orders",
            "release": "2",
        }
    ]
    up = {s.labels["instance"]: s.value for s in samples if s.name == "yunzhou_app_scrape_up"}
    assert up == {"good-1": 1.0, "bad-1": 0.0, "err-1": 0.0, "down-1": 0.0}
    failures = {
        s.labels["instance"]: s.value for s in samples if s.name == "yunzhou_app_scrape_failures_total"
    }
    assert failures == {"good-1": 0.0, "bad-1": 2.0, "err-1": 2.0, "down-1": 2.0}
    assert "line 1" in collector.failures["bad-1"].reason
    assert "HTTP 500" in collector.failures["err-1"].reason
    assert collector.types["orders_total"] == "counter"


def test_instance_series_limits_and_oom_kills() -> None:
    reported = [
        _instance("a-1", 4000, None, pid=None, restarts=0, last_exit=None, memory_limit_bytes=64 << 20)
    ]
    collector = InstanceCollector(lambda: reported, lambda: [("shop/dev/orders", 2, 1)])

    def values() -> dict[str, float]:
        return {s.name: s.value for s in collector.collect(0.0)}

    first = values()
    assert first["yunzhou_instance_cpu_seconds_total"] == 1.5
    assert first["yunzhou_instance_memory_limit_bytes"] == 64 << 20
    assert first["yunzhou_instance_ready"] == 1.0
    assert first["yunzhou_instance_oom_kills_total"] == 0
    assert first["yunzhou_app_replicas_desired"] == 2
    assert first["yunzhou_app_replicas_ready"] == 1
    reported[0] = _instance("a-1", 4000, None, ready=False, restarts=1, last_exit="OOMKilled")
    assert values()["yunzhou_instance_oom_kills_total"] == 1
    assert values()["yunzhou_instance_oom_kills_total"] == 1  # the same exit seen again is not a new kill
    reported[0] = _instance("a-1", 4000, None, restarts=2, last_exit="OOMKilled")
    assert values()["yunzhou_instance_oom_kills_total"] == 2


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_cgroup_memory_limit_and_oom_kills(tmp_path: Path, version: str) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "42").mkdir(parents=True)
    if version == "v1":
        (proc / "42" / "cgroup").write_text("5:cpu,cpuacct:/x\n4:memory:/yz/inst\n0::/\n")
        group = root / "memory" / "yz" / "inst"
        group.mkdir(parents=True)
        (group / "memory.limit_in_bytes").write_text("67108864\n")
        (group / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    else:
        (proc / "42" / "cgroup").write_text("0::/yz/inst\n")
        group = root / "yz" / "inst"
        group.mkdir(parents=True)
        (group / "memory.max").write_text("67108864\n")
        (group / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 3\noom_kill 3\n")
    assert cgroup_memory(42, proc, root) == (64 << 20, 3)
    (group / ("memory.max" if version == "v2" else "memory.limit_in_bytes")).write_text(
        "max\n" if version == "v2" else "9223372036854771712\n"
    )
    assert cgroup_memory(42, proc, root) == (None, 3)
    assert cgroup_memory(43, proc, root) == (None, None)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_cgroup_cpu_throttling(tmp_path: Path, version: str) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "42").mkdir(parents=True)
    if version == "v1":
        (proc / "42" / "cgroup").write_text("5:cpu,cpuacct:/yz/inst\n4:memory:/yz/inst\n")
        group = root / "cpu" / "yz" / "inst"
        group.mkdir(parents=True)
        (group / "cpu.stat").write_text("nr_periods 90\nnr_throttled 12\nthrottled_time 1500000000\n")
    else:
        (proc / "42" / "cgroup").write_text("0::/yz/inst\n")
        group = root / "yz" / "inst"
        group.mkdir(parents=True)
        (group / "cpu.stat").write_text(
            "usage_usec 90\nuser_usec 80\nsystem_usec 10\n"
            "nr_periods 90\nnr_throttled 12\nthrottled_usec 1500000\n"
        )
    assert cgroup_cpu_throttling(42, proc, root) == (12, 1.5)
    (group / "cpu.stat").write_text("usage_usec 90\n")  # no CPU controller enabled: nothing to report
    assert cgroup_cpu_throttling(42, proc, root) is None
    assert cgroup_cpu_throttling(43, proc, root) is None


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_cgroup_cpu_limit(tmp_path: Path, version: str) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "42").mkdir(parents=True)
    if version == "v1":
        (proc / "42" / "cgroup").write_text("5:cpu,cpuacct:/yz/inst\n4:memory:/yz/inst\n")
        group = root / "cpu" / "yz" / "inst"
        group.mkdir(parents=True)
        (group / "cpu.cfs_period_us").write_text("100000\n")
        limited, unlimited = {"cpu.cfs_quota_us": "25000\n"}, {"cpu.cfs_quota_us": "-1\n"}
    else:
        (proc / "42" / "cgroup").write_text("0::/yz/inst\n")
        group = root / "yz" / "inst"
        group.mkdir(parents=True)
        limited, unlimited = {"cpu.max": "150000 100000\n"}, {"cpu.max": "max 100000\n"}
    for name, text in limited.items():
        (group / name).write_text(text)
    assert cgroup_cpu_limit(42, proc, root) == (0.25 if version == "v1" else 1.5)
    for name, text in unlimited.items():
        (group / name).write_text(text)
    assert cgroup_cpu_limit(42, proc, root) is None
    assert cgroup_cpu_limit(43, proc, root) is None  # no such process


def test_cgroup_cpu_limit_without_a_cpu_controller(tmp_path: Path) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "cgroup").write_text("0::/yz/inst\n")
    (root / "yz" / "inst").mkdir(parents=True)  # v2 group without the cpu controller: no cpu.max
    assert cgroup_cpu_limit(42, proc, root) is None


def test_instance_cpu_limit_declared_else_from_the_cgroup() -> None:
    reported = [
        _instance("declared-1", 4000, None, pid=7, cpu_limit_cores=0.5),
        _instance("cgroup-1", 4001, None, pid=8),
        _instance("none-1", 4002, None, pid=9),
        _instance("nopid-1", 4003, None, pid=None),
    ]
    asked: list[int] = []

    def cpu_limit(pid: int) -> float | None:
        asked.append(pid)
        return {7: 2.0, 8: 0.25}.get(pid)

    collector = InstanceCollector(
        lambda: reported,
        cgroup_reader=lambda pid: (None, None),
        throttling_reader=lambda pid: None,
        cpu_limit_reader=cpu_limit,
    )
    limits = {
        s.labels["instance"]: s.value
        for s in collector.collect(0.0)
        if s.name == "yunzhou_instance_cpu_limit_cores"
    }
    assert limits == {"declared-1": 0.5, "cgroup-1": 0.25}  # the release's limit wins; none: no series
    assert asked == [8, 9]
    assert collector.types["yunzhou_instance_cpu_limit_cores"] == "gauge"
