"""Router vs nginx as a reverse proxy, in front of the same backend, driven by the same load client.

    .venv/bin/python bench/router.py [--quick]

Needs Debian's ``nginx`` and ``wrk`` (``apt-get install nginx wrk``). Everything runs on 127.0.0.1:
- backend: nginx (1 worker) serving a static 1 KiB file, so the backend costs as little as possible;
- proxies: the Yunzhou router (one process, as it runs in production) and nginx with ``worker_processes 1``
  (the same one core of work), upstream keep-alive on, access logs off for both;
- client: wrk, one thread, keep-alive connections. Fixed rate uses a wrk Lua ``delay()`` per connection
  (10 connections, each pausing a uniformly random 5-15 ms between requests ≈ 1000 req/s, arrivals not in
  lock-step); wrk measures latency from the write of each request, so the pauses are not counted.
  Max throughput uses 50 connections with no delay, in rounds alternating router and nginx (this VM's
  throughput drifts by tens of percent over a minute; alternating keeps the comparison fair). The
  median round is reported, with every round listed.
CPU seconds per 1000 requests come from utime+stime in /proc/<pid>/stat of the proxy (nginx: master and
workers) before and after each run.

``--parts configurations`` (on by default) then runs router and nginx side by side in three configurations,
32 connections, 8 s each: ``plain`` (access logs off), ``as-served`` (the router's access log indexed into
the log store by the server's own tailer and metrics scraped, in ``bench/router_served.py``; nginx writing
its own access log) and ``https`` (both terminating TLS 1.3 with the same certificate). Prints one JSON
document.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from yunzhou.names.tls.local_ca import LocalCA, write_leaf  # noqa: E402
from yunzhou.router import RouterProcess  # noqa: E402

HOST = "bench.localhost"
CLK_TCK = os.sysconf("SC_CLK_TCK")
WRK_SCRIPT = r"""
local delay_ms = 0
function init(args)
  delay_ms = tonumber(args[1] or "0")
  math.randomseed(os.time())
end
wrk.headers["Host"] = "bench.localhost"
if tonumber(os.getenv("WRK_DELAY") or "0") > 0 then
  -- uniform in [d/2, 3d/2]: connections drift apart instead of firing in lock-step bursts
  function delay() return math.random(math.floor(delay_ms / 2), math.floor(delay_ms * 3 / 2)) end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"errors":%d,"non_2xx":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the full line)
    return total / CLK_TCK


def nginx_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master, *map(int, children)]


def nginx_conf(
    workdir: Path, name: str, port: int, body: str, http_extra: str, listen_extra: str = ""
) -> Path:
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = workdir / f"{name}-temp"
    temp.mkdir()
    conf = workdir / f"{name}.conf"
    conf.write_text(
        f"{user}worker_processes 1;\ndaemon off;\npid {workdir / name}.pid;\n"
        f"error_log {workdir / name}-error.log warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n  access_log off;\n"
        f"  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
        f"  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n"
        f"  scgi_temp_path {temp}/scgi;\n"
        "  keepalive_requests 1000000;\n"
        f"{http_extra}"
        f"  server {{\n    listen 127.0.0.1:{port}{listen_extra};\n{body}  }}\n}}\n"
    )
    return conf


def start_nginx(
    workdir: Path, name: str, port: int, body: str, http_extra: str = "", listen_extra: str = ""
) -> subprocess.Popen[bytes]:
    conf = nginx_conf(workdir, name, port, body, http_extra, listen_extra)
    proc = subprocess.Popen(
        ["nginx", "-p", str(workdir), "-e", str(workdir / f"{name}-error.log"), "-c", str(conf)],
        stdin=subprocess.DEVNULL,
    )
    wait_listening(port)
    return proc


def run_wrk(
    port: int, *, connections: int, seconds: int, delay_ms: int, script: Path, scheme: str = "http"
) -> dict[str, Any]:
    env = {**os.environ, "WRK_DELAY": str(delay_ms)}
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script)]
    args += [f"{scheme}://127.0.0.1:{port}/index.html", "--", str(delay_ms)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    out = done.stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    raw = json.loads(line.removeprefix("RESULT "))
    seconds_run = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / seconds_run, 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": raw["errors"],
        "non_2xx": raw["non_2xx"],
    }


def measure(
    port: int, pids: list[int], *, connections: int, seconds: int, delay_ms: int, script: Path
) -> dict[str, Any]:
    run_wrk(port, connections=connections, seconds=1, delay_ms=delay_ms, script=script)  # warm pools
    before = cpu_seconds(pids) if pids else 0.0
    result = run_wrk(port, connections=connections, seconds=seconds, delay_ms=delay_ms, script=script)
    if pids:
        used = cpu_seconds(pids) - before
        result["cpu_s"] = round(used, 3)
        result["cpu_s_per_1000_requests"] = round(used / max(result["requests"], 1) * 1000, 4)
    return result


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median round by requests/s, plus every round's requests/s to show the spread."""
    ordered = sorted(runs, key=lambda run: run["requests_per_s"])
    median = dict(ordered[len(ordered) // 2])
    median["rounds_requests_per_s"] = [run["requests_per_s"] for run in runs]
    return median


def machine_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy over ``seconds`` before the benchmark: other work skews every number."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return round((busy1 - busy0) / max(total1 - total0, 1), 3)


CONFIGURATIONS = ("plain", "as-served", "https")
CONFIG_CONNECTIONS = 32
TARGETS = {
    "plain": 0.75,  # router req/s ≥ this × nginx's, per configuration (issue 19)
    "as-served": 0.5,
    "https": 0.6,
}


class ServedSide:
    """``bench/router_served.py`` as a child: the log store, the access-log tailer and the metrics scrape
    of ``yunzhou server``, around a router started with an access log."""

    def __init__(self, access_log: Path, data_dir: Path, router: RouterProcess) -> None:
        env = {
            **os.environ,
            "BENCH_ROUTER_ADMIN": router.admin,
            "BENCH_ROUTER_ADMIN_HEADERS": json.dumps(router.admin_headers),
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "router_served.py"), str(access_log), str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.pid = self.proc.pid

    def sync(self) -> dict[str, Any]:
        """Everything the router wrote so far indexed and committed; the store's counts."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("sync\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("bench/router_served.py exited")
        doc: dict[str, Any] = json.loads(line)
        return doc

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def tls_session(port: int) -> dict[str, Any]:
    """The protocol and cipher a client negotiates with the listener on ``port``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as conn,
    ):
        cipher = conn.cipher()
        return {"protocol": conn.version(), "cipher": cipher[0] if cipher else None}


def bench_certificate(workdir: Path) -> tuple[Path, Path]:
    """A leaf for the bench host from a local CA (yunzhou.names.tls), for both proxies."""
    ca = LocalCA.open(workdir / "ca")
    return write_leaf(ca.issue([HOST]), workdir / "certs", "bench")


def config_run(
    port: int,
    pids: list[int],
    *,
    seconds: int,
    script: Path,
    scheme: str,
    side: ServedSide | None = None,
) -> dict[str, Any]:
    """One wrk run (after a 1 s warm-up); CPU µs per request of ``pids`` and, as served, of the indexing."""
    common: dict[str, Any] = {"connections": CONFIG_CONNECTIONS, "delay_ms": 0, "script": script}
    run_wrk(port, seconds=1, scheme=scheme, **common)
    indexed_before = side.sync()["written"] if side is not None else 0
    side_before = cpu_seconds([side.pid]) if side is not None else 0.0
    before = cpu_seconds(pids)
    result = run_wrk(port, seconds=seconds, scheme=scheme, **common)
    used = cpu_seconds(pids) - before
    requests = max(result["requests"], 1)
    result["cpu_us_per_request"] = round(used / requests * 1e6, 1)
    if side is not None:
        deadline = time.monotonic() + 10.0
        synced = side.sync()  # what the router wrote so far, indexed and committed
        while synced["written"] - indexed_before < result["requests"] and time.monotonic() < deadline:
            time.sleep(0.05)  # the router writes its log every 0.1 s
            synced = side.sync()
        result["indexing_cpu_us_per_request"] = round(
            (cpu_seconds([side.pid]) - side_before) / requests * 1e6, 1
        )
        result["indexed"] = synced["written"] - indexed_before
        result["index_dropped_or_rejected"] = synced["dropped"] + synced["rejected"]
    return result


def run_configurations(
    workdir: Path, backend_port: int, script: Path, names: list[str], *, seconds: int, rounds: int
) -> dict[str, Any]:
    """Router vs nginx in each configuration, in the same run: 32 connections, ``seconds`` per proxy."""
    out: dict[str, Any] = {}
    cert_file, key_file = bench_certificate(workdir)
    for name in names:
        with contextlib.ExitStack() as stack:
            tag = name.replace("-", "_")
            router = RouterProcess()
            stack.callback(router.stop)
            nginx_port = free_port()
            scheme, listen_extra, body, http_extra = (
                "http",
                "",
                UPSTREAM_LOCATION,
                upstream_pool(backend_port),
            )
            router_kwargs: dict[str, Any] = {}
            certificates = None
            side: ServedSide | None = None
            if name == "as-served":
                access_log = workdir / f"{tag}-router-access.log"
                router_kwargs["access_log"] = str(access_log)
                http_extra += NGINX_JSON_LOG
                body = f"    access_log {workdir / tag}-nginx-access.log bench;\n" + body
            elif name == "https":
                scheme, listen_extra = "https", " ssl"
                body = (
                    f"    ssl_certificate {cert_file};\n    ssl_certificate_key {key_file};\n"
                    "    ssl_protocols TLSv1.3;\n" + body
                )
                router_kwargs["tls_listen"] = "127.0.0.1:0"
                certificates = {"*": {"cert_file": str(cert_file), "key_file": str(key_file)}}
            nginx = start_nginx(workdir, f"{tag}-proxy", nginx_port, body, http_extra, listen_extra)
            stack.callback(stop_nginx, [nginx])
            router.start("127.0.0.1:0", "127.0.0.1:0", **router_kwargs)
            router.push_config(route_snapshot(backend_port, certificates))
            address = router.tls_listen if name == "https" else router.listen
            router_port = int(address.rsplit(":", 1)[1])
            if name == "as-served":
                side = ServedSide(access_log, workdir / f"{tag}-data", router)
                stack.callback(side.stop)
            runs: dict[str, list[dict[str, Any]]] = {"router": [], "nginx": []}
            for _ in range(rounds):
                runs["router"].append(
                    config_run(
                        router_port, [router.pid], seconds=seconds, script=script, scheme=scheme, side=side
                    )
                )
                runs["nginx"].append(
                    config_run(
                        nginx_port, nginx_pids(nginx.pid), seconds=seconds, script=script, scheme=scheme
                    )
                )
            row: dict[str, Any] = {proxy: median_of(found) for proxy, found in runs.items()}
            if name == "https":
                row["router"]["tls"] = tls_session(router_port)
                row["nginx"]["tls"] = tls_session(nginx_port)
            ratio = row["router"]["requests_per_s"] / max(row["nginx"]["requests_per_s"], 1e-9)
            row["router_vs_nginx_rps"] = round(ratio, 3)
            row["target"] = TARGETS[name]
            row["met"] = ratio >= TARGETS[name]
            out[name] = row
    return out


UPSTREAM_LOCATION = (
    "    location / {\n"
    "      proxy_pass http://backend;\n      proxy_http_version 1.1;\n"
    '      proxy_set_header Connection "";\n      proxy_set_header Host $host;\n'
    "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
    "      proxy_set_header X-Forwarded-Proto $scheme;\n"
    "      proxy_set_header X-Forwarded-Host $http_host;\n"
    "      proxy_set_header X-Request-Id $request_id;\n    }\n"
)
# nginx's access log in the as-served rows: the fields of the router's access log, one JSON line each
NGINX_JSON_LOG = (
    '  log_format bench escape=json \'{"time":"$time_iso8601","app":"bench/dev/static",'
    '"method":"$request_method","host":"$host","path":"$request_uri","status":$status,'
    '"bytes":$body_bytes_sent,"duration_ms":$request_time,"request_id":"$request_id"}\';\n'
)


def upstream_pool(backend_port: int) -> str:
    return f"  upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 64; }}\n"


def route_snapshot(backend_port: int, certificates: dict[str, Any] | None = None) -> dict[str, Any]:
    snapshot: dict[str, Any] = {
        "version": 1,
        "routes": [
            {
                "host": HOST,
                "path_prefix": "/",
                "app": "bench/dev/static",
                "backends": [{"id": "nginx-static", "address": f"127.0.0.1:{backend_port}", "release": 1}],
            }
        ],
    }
    if certificates:
        snapshot["certificates"] = certificates
    return snapshot


def stop_nginx(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGQUIT)  # graceful stop for nginx
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def classic(workdir: Path, backend_port: int, script: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Fixed rate and max throughput: direct / router / nginx, access logs off (the original rows)."""
    rate: dict[str, Any] = {"connections": 10, "delay_ms": 10, "seconds": args.rate_seconds}
    peak: dict[str, Any] = {"connections": 50, "delay_ms": 0, "seconds": args.max_seconds}
    results: dict[str, Any] = {}
    procs: list[subprocess.Popen[bytes]] = []
    router = RouterProcess()
    nginx_proxy_port = free_port()
    try:
        nginx_proxy = start_nginx(
            workdir, "proxy", nginx_proxy_port, UPSTREAM_LOCATION, upstream_pool(backend_port)
        )
        procs.append(nginx_proxy)
        router.start("127.0.0.1:0", "127.0.0.1:0")
        router.push_config(route_snapshot(backend_port))
        router_port = int(router.listen.rsplit(":", 1)[1])
        targets = {
            "direct": (backend_port, []),
            "router": (router_port, [router.pid]),
            "nginx": (nginx_proxy_port, nginx_pids(nginx_proxy.pid)),
        }
        for name, (port, pids) in targets.items():
            results[name] = {"rate_1000": measure(port, pids, script=script, **rate)}
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name in ("router", "nginx"):
                port, pids = targets[name]
                rounds[name].append(measure(port, pids, script=script, **peak))
        port, pids = targets["direct"]
        rounds["direct"].append(measure(port, pids, script=script, **peak))
        for name, runs in rounds.items():
            results[name]["max"] = median_of(runs)
    finally:
        router.stop()
        stop_nginx(procs)

    direct_p50 = results["direct"]["rate_1000"]["p50_ms"]
    for name in ("router", "nginx"):
        at_rate = results[name]["rate_1000"]
        at_rate["added_p50_ms"] = round(at_rate["p50_ms"] - direct_p50, 3)
        at_rate["added_p99_ms"] = round(at_rate["p99_ms"] - results["direct"]["rate_1000"]["p99_ms"], 3)
    r, n = results["router"], results["nginx"]
    results["ratios"] = {
        "router_vs_nginx_max_rps": round(r["max"]["requests_per_s"] / n["max"]["requests_per_s"], 3),
        "router_vs_nginx_best_round_rps": round(
            max(r["max"]["rounds_requests_per_s"]) / max(n["max"]["rounds_requests_per_s"]), 3
        ),
        "router_vs_nginx_cpu_per_request": round(
            r["max"]["cpu_s_per_1000_requests"] / max(n["max"]["cpu_s_per_1000_requests"], 1e-9), 2
        ),
    }
    results["targets"] = {
        "router_max_rps_at_least_half_of_nginx": r["max"]["requests_per_s"]
        >= 0.5 * n["max"]["requests_per_s"],
        "router_added_p50_at_1000_rps_at_most_0_5_ms": r["rate_1000"]["added_p50_ms"] <= 0.5,
    }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke check")
    parser.add_argument("--rate-seconds", type=int, default=6)
    parser.add_argument("--max-seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3, help="max-throughput rounds per proxy")
    parser.add_argument(
        "--parts",
        default="classic,configurations",
        help="comma-separated: classic (fixed rate + max, logs off), configurations (plain/as-served/https)",
    )
    parser.add_argument(
        "--configurations", default=",".join(CONFIGURATIONS), help="which of " + ", ".join(CONFIGURATIONS)
    )
    parser.add_argument("--config-seconds", type=int, default=8, help="wrk run per proxy and configuration")
    parser.add_argument("--config-rounds", type=int, default=1, help="alternating rounds per configuration")
    args = parser.parse_args()
    if args.quick:
        args.rate_seconds, args.max_seconds, args.rounds, args.config_seconds = 2, 2, 1, 2
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    configurations = [c.strip() for c in args.configurations.split(",") if c.strip()]
    unknown = (parts - {"classic", "configurations"}) | (set(configurations) - set(CONFIGURATIONS))
    if unknown:
        print(
            f"bench/router.py: unknown part or configuration: {', '.join(sorted(unknown))}", file=sys.stderr
        )
        return 2
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    if missing:
        print(f"bench/router.py needs {' and '.join(missing)}: apt-get install nginx wrk", file=sys.stderr)
        return 2

    busy_before = machine_busy()
    if busy_before > 0.15:
        print(
            f"warning: the machine was {busy_before:.0%} busy before the run; numbers will be low",
            file=sys.stderr,
        )
    report: dict[str, Any] = {
        "setup": {
            "backend": "nginx 1 worker serving a static 1 KiB file",
            "client": "wrk -t1 keep-alive; rate: 10 conns, 5-15 ms random pauses; max: 50 conns, median; "
            f"configurations: {CONFIG_CONNECTIONS} conns, {args.config_seconds} s per proxy",
            "nginx_proxy": "worker_processes 1, upstream keepalive 64, access_log off unless as-served",
            "router": "python -m yunzhou.router (uvloop + httptools), no access log unless as-served",
            "cpus": os.cpu_count(),
            "rate_seconds": args.rate_seconds,
            "max_seconds": args.max_seconds,
            "rounds": args.rounds,
            "machine_busy_before": busy_before,
        }
    }
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="yunzhou-bench-router-") as tmp:
        workdir = Path(tmp)
        www = workdir / "www"
        www.mkdir()
        (www / "index.html").write_bytes(b"x" * 1023 + b"\n")
        script = workdir / "bench.lua"
        script.write_text(WRK_SCRIPT)
        backend_port = free_port()
        try:
            procs.append(start_nginx(workdir, "backend", backend_port, f"    root {www};\n"))
            if "classic" in parts:
                report.update(classic(workdir, backend_port, script, args))
            if "configurations" in parts:
                report["configurations"] = run_configurations(
                    workdir,
                    backend_port,
                    script,
                    configurations,
                    seconds=args.config_seconds,
                    rounds=args.config_rounds,
                )
        finally:
            stop_nginx(procs)
    report["machine_busy_after"] = machine_busy()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
