"""Per-instance metrics (CPU, memory, their limits, restarts, readiness, OOM kills), replica counts, and
each app's own Prometheus endpoint scraped per ready instance.

Observe never reaches into a runtime: the composition root hands in callables that report instances
(``InstanceSample``) and replica counts. An app's endpoint that is down or serves bad text is counted
(``yunzhou_app_scrape_failures_total``), remembered (``AppScrapeCollector.failures``) and logged once per
change; its samples for that tick are dropped and every other target is still scraped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import httpx

from yunzhou.observe.metrics.collect_router import split_app_key
from yunzhou.observe.metrics.exposition import ExpositionError, Sample, parse

log = logging.getLogger("yunzhou.observe.metrics")
_UNLIMITED = 1 << 62  # cgroup v1 writes "no limit" as a page-rounded 2**63-1
MAX_APP_SCRAPE_BYTES = 4 * 1024 * 1024
MAX_APP_SAMPLES = 10_000


@dataclass(frozen=True)
class InstanceSample:
    """One instance as the runtime reports it; ``metrics_path`` set when its release declares an endpoint."""

    app: str  # project/env/app
    instance: str
    release: int
    ready: bool
    cpu_seconds: float
    memory_bytes: int
    restarts: int
    last_exit: str | None = None
    pid: int | None = None
    port: int | None = None
    memory_limit_bytes: int | None = None
    host: str = "127.0.0.1"  # where it serves ``port``: a container's bridge address
    metrics_path: str | None = None
    cpu_limit_cores: float | None = None

    def labels(self) -> dict[str, str] | None:
        parts = split_app_key(self.app)
        if parts is None:
            return None
        return {**parts, "release": str(self.release), "instance": self.instance}


InstanceSource = Callable[[], Iterable[InstanceSample]]
ReplicaSource = Callable[[], Iterable[tuple[str, int, int]]]  # (project/env/app, desired, ready)


def _cgroup_dir(pid: int, controller: str, proc: Path, root: Path) -> Path | None:
    """The cgroup directory of ``pid`` for ``controller`` (v1) or the unified hierarchy (v2)."""
    try:
        text = (proc / str(pid) / "cgroup").read_text()
    except OSError:
        return None
    unified = None
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return root / controller / path.lstrip("/")
        if controllers == "":
            unified = root / path.lstrip("/")
    return unified


def _counters(path: Path) -> dict[str, int] | None:
    """A cgroup ``key value`` file (memory.events, cpu.stat …) as integers; None when it cannot be read.
    (runtimes/local/cgroups.py reads the same format; observe.metrics may not import runtimes.)"""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    return {key: int(value) for key, _, value in (line.partition(" ") for line in lines) if value.isdecimal()}


def cgroup_memory(
    pid: int, proc: Path = Path("/proc"), root: Path = Path("/sys/fs/cgroup")
) -> tuple[int | None, int | None]:
    """(memory limit in bytes or None when unlimited/unknown, OOM kills or None when unknown) of a process."""
    where = _cgroup_dir(pid, "memory", proc, root)
    if where is None:
        return None, None
    limit: int | None = None
    for name in ("memory.max", "memory.limit_in_bytes"):
        try:
            raw = (where / name).read_text().strip()
        except OSError:
            continue
        limit = None if raw == "max" or int(raw) >= _UNLIMITED else int(raw)
        break
    kills: int | None = None
    for name in ("memory.events", "memory.oom_control"):
        counters = _counters(where / name)
        if counters is None:
            continue
        kills = counters.get("oom_kill")
        break
    return limit, kills


def cgroup_cpu_throttling(
    pid: int, proc: Path = Path("/proc"), root: Path = Path("/sys/fs/cgroup")
) -> tuple[int, float] | None:
    """(CPU periods throttled, seconds throttled) of a process's cgroup from ``cpu.stat`` — v2
    ``nr_throttled``/``throttled_usec``, v1 ``nr_throttled``/``throttled_time`` (ns) — or None when
    unknown (no cgroup, no CPU controller)."""
    where = _cgroup_dir(pid, "cpu", proc, root)
    if where is None:
        return None
    stat = _counters(where / "cpu.stat")
    if stat is None or "nr_throttled" not in stat:
        return None
    if "throttled_usec" in stat:
        return stat["nr_throttled"], stat["throttled_usec"] / 1e6
    return stat["nr_throttled"], stat.get("throttled_time", 0) / 1e9


def cgroup_cpu_limit(
    pid: int, proc: Path = Path("/proc"), root: Path = Path("/sys/fs/cgroup")
) -> float | None:
    """The CPU limit in cores of a process's cgroup — v2 ``cpu.max`` ("quota period", "max" when
    unlimited), v1 ``cpu.cfs_quota_us`` (-1 when unlimited) / ``cpu.cfs_period_us`` — or None when it
    has none or it cannot be read."""
    where = _cgroup_dir(pid, "cpu", proc, root)
    if where is None:
        return None
    try:
        quota, _, period = (where / "cpu.max").read_text().strip().partition(" ")
    except OSError:
        try:
            quota = (where / "cpu.cfs_quota_us").read_text().strip()
            period = (where / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if not (quota.isdecimal() and period.isdecimal()) or int(period) == 0:
        return None  # "max", -1: no limit
    return int(quota) / int(period)


class InstanceCollector:
    name = "instances"
    types: ClassVar[dict[str, str]] = {
        "yunzhou_instance_cpu_seconds_total": "counter",
        "yunzhou_instance_memory_bytes": "gauge",
        "yunzhou_instance_memory_limit_bytes": "gauge",
        "yunzhou_instance_cpu_limit_cores": "gauge",
        "yunzhou_instance_restarts_total": "counter",
        "yunzhou_instance_ready": "gauge",
        "yunzhou_instance_oom_kills_total": "counter",
        "yunzhou_instance_cpu_throttled_periods_total": "counter",
        "yunzhou_instance_cpu_throttled_seconds_total": "counter",
        "yunzhou_app_replicas_desired": "gauge",
        "yunzhou_app_replicas_ready": "gauge",
    }
    help: ClassVar[dict[str, str]] = {
        "yunzhou_instance_cpu_seconds_total": "CPU time used by an instance (its process group or cgroup).",
        "yunzhou_instance_memory_bytes": "Resident memory of an instance.",
        "yunzhou_instance_memory_limit_bytes": "Memory limit of an instance (only when it has one).",
        "yunzhou_instance_cpu_limit_cores": "CPU limit of an instance in cores (only when it has one).",
        "yunzhou_instance_restarts_total": "Times the runtime restarted an instance.",
        "yunzhou_instance_ready": "1 when the instance passes its readiness check, else 0.",
        "yunzhou_instance_oom_kills_total": "Times an instance was killed for running out of memory.",
        "yunzhou_instance_cpu_throttled_periods_total": "CPU quota periods with the instance throttled.",
        "yunzhou_instance_cpu_throttled_seconds_total": "Time the instance waited because of its CPU limit.",
        "yunzhou_app_replicas_desired": "Replicas the app should have.",
        "yunzhou_app_replicas_ready": "Replicas that were ready at the last reconcile pass.",
    }

    def __init__(
        self,
        instances: InstanceSource,
        replicas: ReplicaSource | None = None,
        *,
        cgroup_reader: Callable[[int], tuple[int | None, int | None]] = cgroup_memory,
        throttling_reader: Callable[[int], tuple[int, float] | None] = cgroup_cpu_throttling,
        cpu_limit_reader: Callable[[int], float | None] = cgroup_cpu_limit,
    ) -> None:
        self.instances = instances
        self.replicas = replicas
        self.cgroup_reader = cgroup_reader
        self.throttling_reader = throttling_reader
        self.cpu_limit_reader = cpu_limit_reader
        # OOM kills seen through exits, for instances whose cgroup cannot be read: id → (last seen, count)
        self._exits: dict[str, tuple[tuple[int, str | None], int]] = {}

    def _oom_from_exits(self, inst: InstanceSample) -> int:
        seen = (inst.restarts, inst.last_exit)
        previous, count = self._exits.get(inst.instance, ((0, None), 0))
        if seen != previous and inst.last_exit == "OOMKilled":
            count += 1
        self._exits[inst.instance] = (seen, count)
        return count

    def collect(self, now: float) -> Iterable[Sample]:
        samples: list[Sample] = []
        alive: set[str] = set()
        for inst in self.instances():
            labels = inst.labels()
            if labels is None:
                continue
            alive.add(inst.instance)
            limit, kills, throttled = inst.memory_limit_bytes, None, None
            cpu_limit = inst.cpu_limit_cores
            if inst.pid is not None:
                cg_limit, kills = self.cgroup_reader(inst.pid)
                limit = limit if limit is not None else cg_limit
                throttled = self.throttling_reader(inst.pid)
                if cpu_limit is None:
                    cpu_limit = self.cpu_limit_reader(inst.pid)
            oom = max(kills or 0, self._oom_from_exits(inst))
            samples += [
                Sample("yunzhou_instance_cpu_seconds_total", labels, inst.cpu_seconds),
                Sample("yunzhou_instance_memory_bytes", labels, float(inst.memory_bytes)),
                Sample("yunzhou_instance_restarts_total", labels, float(inst.restarts)),
                Sample("yunzhou_instance_ready", labels, 1.0 if inst.ready else 0.0),
                Sample("yunzhou_instance_oom_kills_total", labels, float(oom)),
            ]
            if limit is not None:
                samples.append(Sample("yunzhou_instance_memory_limit_bytes", labels, float(limit)))
            if cpu_limit is not None:
                samples.append(Sample("yunzhou_instance_cpu_limit_cores", labels, cpu_limit))
            if throttled is not None:
                periods, seconds = throttled
                samples.append(Sample("yunzhou_instance_cpu_throttled_periods_total", labels, float(periods)))
                samples.append(Sample("yunzhou_instance_cpu_throttled_seconds_total", labels, seconds))
        for gone in set(self._exits) - alive:
            del self._exits[gone]
        for address, desired, ready in self.replicas() if self.replicas else ():
            parts = split_app_key(address)
            if parts is not None:
                samples.append(Sample("yunzhou_app_replicas_desired", parts, float(desired)))
                samples.append(Sample("yunzhou_app_replicas_ready", parts, float(ready)))
        return samples


@dataclass(frozen=True)
class ScrapeFailure:
    instance: str
    app: str
    url: str
    reason: str


class AppScrapeCollector:
    """Scrapes ``metrics_path`` on every ready instance that declares one; their names are kept and
    project/env/app/release/instance labels are added (replacing same-named labels the app set)."""

    name = "apps"

    def __init__(self, instances: InstanceSource, *, timeout: float = 2.0, workers: int = 8) -> None:
        self.instances = instances
        self.timeout = timeout
        self.types: dict[str, str] = {
            "yunzhou_app_scrape_failures_total": "counter",
            "yunzhou_app_scrape_up": "gauge",
        }
        self.failures: dict[str, ScrapeFailure] = {}  # instance → the last failure, while it lasts
        self._failure_counts: dict[str, int] = {}
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="yunzhou-metrics-app")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._http.close()

    def _scrape(self, inst: InstanceSample, labels: dict[str, str]) -> tuple[list[Sample], dict[str, str]]:
        url = f"http://{inst.host}:{inst.port}{inst.metrics_path}"
        with self._http.stream("GET", url, headers={"Accept": "text/plain"}) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_APP_SCRAPE_BYTES:
                    raise ValueError(f"more than {MAX_APP_SCRAPE_BYTES} bytes")
        exposition = parse(body.decode("utf-8", errors="replace"))
        if len(exposition.samples) > MAX_APP_SAMPLES:
            raise ValueError(f"{len(exposition.samples)} samples; at most {MAX_APP_SAMPLES} are kept")
        # an app's own job label would win over the scraping Prometheus's (honor_labels): it is dropped
        own = [{k: v for k, v in s.labels.items() if k != "job"} for s in exposition.samples]
        return [
            Sample(s.name, {**mine, **labels}, s.value)
            for s, mine in zip(exposition.samples, own, strict=True)
        ], exposition.types

    def collect(self, now: float) -> Iterable[Sample]:
        targets = []
        for inst in self.instances():
            labels = inst.labels()
            if inst.ready and inst.metrics_path and inst.port and labels is not None:
                targets.append((inst, labels))
        futures = [(inst, labels, self._pool.submit(self._scrape, inst, labels)) for inst, labels in targets]
        samples: list[Sample] = []
        for inst, labels, future in futures:
            try:
                got, types = future.result()
            except (httpx.HTTPError, ExpositionError, ValueError, UnicodeError) as exc:
                self._failed(inst, labels, f"{type(exc).__name__}: {exc}")
                samples.append(Sample("yunzhou_app_scrape_up", labels, 0.0))
            else:
                if self.failures.pop(inst.instance, None) is not None:
                    log.info("metrics endpoint of %s answers again", inst.instance)
                samples.extend(got)
                self.types.update(types)
                samples.append(Sample("yunzhou_app_scrape_up", labels, 1.0))
            count = self._failure_counts.get(inst.instance, 0)
            samples.append(Sample("yunzhou_app_scrape_failures_total", labels, float(count)))
        live = {inst.instance for inst, _ in targets}
        for gone in set(self._failure_counts) - live:
            self._failure_counts.pop(gone, None)
            self.failures.pop(gone, None)
        return samples

    def _failed(self, inst: InstanceSample, labels: dict[str, str], reason: str) -> None:
        self._failure_counts[inst.instance] = self._failure_counts.get(inst.instance, 0) + 1
        url = f"http://{inst.host}:{inst.port}{inst.metrics_path}"
        failure = ScrapeFailure(inst.instance, inst.app, url, reason[:500])
        if self.failures.get(inst.instance) != failure:
            log.warning("cannot scrape metrics of %s (%s): %s", inst.instance, url, failure.reason)
        self.failures[inst.instance] = failure
