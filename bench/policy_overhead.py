"""What traffic policy costs the router: the same load with no policy and with the full policy set.

    .venv/bin/python bench/policy_overhead.py [--quick]

Needs Debian's ``nginx`` and ``wrk`` (as bench/router.py, whose helpers it reuses). One router process,
two nginx static backends (1 worker each), two hosts routed to the same backends:
- ``plain.localhost``: no policy (the router's fast path);
- ``policy.localhost``: every policy kind at once — two header-matching traffic routes (regex and prefix)
  checked before the default split 90/10 stable/canary, per-try and overall timeouts, retries with a
  budget, connection-pool limits, outlier detection, least-requests balancing, an app rate limit and a
  per-caller rate limit (set high enough never to refuse), and an access policy with allow/deny lists.
Max throughput: wrk, one thread, 50 keep-alive connections, no delay; rounds alternate the two hosts (the
VM's throughput drifts) and the median round of each is reported. Prints one JSON object.

``--instructions`` counts instead of timing (needs ``valgrind``): the router runs under callgrind, and one
keep-alive client sends ``--requests`` GETs (after 300 to warm up) to each host in turn, the counters
zeroed before and dumped after each batch. Instructions per request of the router process are the same
from run to run (±0.5 %) whatever else the machine is doing — what the wall-clock rounds cannot give on a
shared machine. The count is user-space only (the kernel's loopback TCP is not in it), so its percentage
overstates what the policy costs in CPU time.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from yunzhou.router import RouterProcess  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_router", Path(__file__).with_name("router.py"))
assert _spec is not None
assert _spec.loader is not None
bench_router = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_router)

FULL_POLICY: dict[str, Any] = {
    "routes": [
        {
            "name": "beta-users",
            "match": {"path": {"prefix": "/beta"}, "headers": {"x-user": {"regex": "^beta-[0-9]+$"}}},
            "to": [{"release": "canary"}],
        },
        {
            "name": "mobile",
            "match": {"headers": {"user-agent": {"prefix": "Mobile"}}},
            "to": [{"release": "stable", "weight": 100}],
        },
    ],
    "timeouts": {"perTry": "2s", "overall": "10s"},
    "retries": {"attempts": 2, "retryOn": ["connect-failure", "reset", "gateway-error", "5xx"]},
    "connectionPool": {"maxConnections": 1000, "maxPending": 1000, "maxRequestsPerConnection": 100000},
    "outlierDetection": {"consecutive5xx": 5, "consecutiveGatewayErrors": 3, "baseEjectionTime": "30s"},
    "loadBalancer": {"policy": "least-requests"},
    "rateLimit": {"rps": 1000000, "burst": 1000000, "perCaller": {"rps": 1000000, "burst": 1000000}},
    "access": {"default": "allow-environment", "allow": ["web", "bench/prod/*"], "deny": ["batch"]},
}


def wrk_script(host: str) -> str:
    return bench_router.WRK_SCRIPT.replace('"bench.localhost"', json.dumps(host))


def count_instructions(router: RouterProcess, port: int, host: str, requests: int, out_dir: Path) -> int:
    """Router instructions over ``requests`` keep-alive GETs to ``host`` (callgrind counters zeroed first)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def send(n: int) -> None:
        for _ in range(n):
            conn.request("GET", "/", headers={"Host": host, "User-Agent": "bench", "Accept": "*/*"})
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"{host}: status {answer.status}")

    try:
        send(300)
        before = set(out_dir.glob("callgrind.*"))
        subprocess.run(["callgrind_control", "-z", str(router.pid)], check=True, capture_output=True)
        send(requests)
        subprocess.run(["callgrind_control", "-d", str(router.pid)], check=True, capture_output=True)
    finally:
        conn.close()
    (dump,) = set(out_dir.glob("callgrind.*")) - before
    found = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(), re.M)
    if found is None:
        raise RuntimeError(f"no instruction total in {dump}")
    return int(found.group(1))


def valgrind_python(workdir: Path) -> str:
    """An interpreter wrapper that RouterProcess can start: the router under callgrind, dumps in workdir."""
    wrapper = workdir / "python-under-callgrind"
    out = f"--callgrind-out-file={workdir}/callgrind.%p"
    wrapper.write_text(f'#!/bin/sh\nexec valgrind --tool=callgrind {out} "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke check")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--instructions", action="store_true", help="count router instructions under callgrind instead"
    )
    parser.add_argument("--requests", type=int, default=2000, help="requests per host with --instructions")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.requests = 2, 1, 300
    tools = ("nginx", "valgrind", "callgrind_control") if args.instructions else ("nginx", "wrk")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        print(
            f"bench/policy_overhead.py needs {' and '.join(missing)}: apt-get install nginx "
            + ("valgrind" if args.instructions else "wrk"),
            file=sys.stderr,
        )
        return 2
    busy_before = bench_router.machine_busy()
    procs: list[subprocess.Popen[bytes]] = []
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "full_policy": []}
    with tempfile.TemporaryDirectory(prefix="yunzhou-bench-policy-") as tmp:
        workdir = Path(tmp)
        router = RouterProcess(python=valgrind_python(workdir)) if args.instructions else RouterProcess()
        www = workdir / "www"
        www.mkdir()
        (www / "index.html").write_bytes(b"x" * 1023 + b"\n")
        scripts = {}
        for name, host in (("baseline", "plain.localhost"), ("full_policy", "policy.localhost")):
            scripts[name] = workdir / f"{name}.lua"
            scripts[name].write_text(wrk_script(host))
        ports = [bench_router.free_port(), bench_router.free_port()]
        try:
            for i, port in enumerate(ports):
                procs.append(bench_router.start_nginx(workdir, f"backend{i}", port, f"    root {www};\n"))
            backends = [
                {"id": "static-stable", "address": f"127.0.0.1:{ports[0]}", "release": 1},
                {"id": "static-canary", "address": f"127.0.0.1:{ports[1]}", "release": 2, "track": "canary"},
            ]
            router.start("127.0.0.1:0", "127.0.0.1:0", ready_timeout=300 if args.instructions else 15)
            router.push_config(
                {
                    "version": 1,
                    "routes": [
                        {
                            "host": "plain.localhost",
                            "path_prefix": "/",
                            "app": "bench/dev/plain",
                            "backends": backends,
                        },
                        {
                            "host": "policy.localhost",
                            "path_prefix": "/",
                            "app": "bench/dev/governed",
                            "backends": backends,
                        },
                    ],
                    "policies": {
                        "bench/dev/governed": {"traffic": FULL_POLICY, "split": {"stable": 90, "canary": 10}}
                    },
                }
            )
            port = int(router.listen.rsplit(":", 1)[1])
            if args.instructions:
                counted = {
                    name: count_instructions(router, port, host, args.requests, workdir) / args.requests
                    for name, host in (("baseline", "plain.localhost"), ("full_policy", "policy.localhost"))
                }
                print(json.dumps(instruction_result(counted, args.requests), indent=2))
                return 0
            pids = [router.pid]
            for _ in range(args.rounds):
                for name in ("baseline", "full_policy"):
                    runs[name].append(
                        bench_router.measure(
                            port, pids, connections=50, seconds=args.seconds, delay_ms=0, script=scripts[name]
                        )
                    )
        finally:
            router.stop(timeout=60 if args.instructions else 10)
            for proc in procs:
                proc.terminate()
                proc.wait(10)
    return report(runs, args, busy_before)


def instruction_result(per_request: dict[str, float], requests: int) -> dict[str, Any]:
    base, full = per_request["baseline"], per_request["full_policy"]
    return {
        "baseline_instructions_per_request": round(base),
        "full_policy_instructions_per_request": round(full),
        "instruction_cost_percent": round((full / base - 1) * 100, 1),
        "requests_per_host": requests,
        "python": sys.version.split()[0],
        "valgrind": subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip(),
    }


def report(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace, busy_before: float) -> int:
    base = bench_router.median_of(runs["baseline"])
    full = bench_router.median_of(runs["full_policy"])
    result = {
        "baseline_rps": base["requests_per_s"],
        "full_policy_rps": full["requests_per_s"],
        "throughput_cost_percent": round((1 - full["requests_per_s"] / base["requests_per_s"]) * 100, 1),
        "baseline_p50_ms": base["p50_ms"],
        "full_policy_p50_ms": full["p50_ms"],
        "baseline_p99_ms": base["p99_ms"],
        "full_policy_p99_ms": full["p99_ms"],
        "baseline_cpu_s_per_1000_requests": base.get("cpu_s_per_1000_requests"),
        "full_policy_cpu_s_per_1000_requests": full.get("cpu_s_per_1000_requests"),
        "errors": base["errors"] + full["errors"] + base["non_2xx"] + full["non_2xx"],
        "rounds": {name: [r["requests_per_s"] for r in rs] for name, rs in runs.items()},
        "connections": 50,
        "seconds_per_round": args.seconds,
        "machine_busy_before": busy_before,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
