"""Scale benchmark for the Kubernetes target: deploy 100, 500 and 1,000 small apps to a real control plane
(kube-apiserver + controller-manager + scheduler, kwok nodes) through a real `yunzhou server`, and time
them until every app's rollout has succeeded.

Run: .venv/bin/python bench/k8s_scale.py [--sizes 100,500,1000]
Prints JSON per size: seconds until all Ready, seconds per app, the yunzhou server's CPU seconds (user +
system, from /proc), and the anchor (Argo CD ≈ 0.05 s/app on 8 vCPUs; target ≤ 0.05 s/app here on 2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess
from yunzhou.testing.k8s import K8sTestEnv

ANCHOR_S_PER_APP = 0.05


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def small_app(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": name},
        "containers": {"main": {"image": "registry.test/small:1"}},
    }


def run_size(client: YunzhouClient, server_pid: int, project: str, size: int) -> dict[str, Any]:
    client.create_project(project)
    client.create_environment(project, "dev", target="cluster:kwok", namespace=project)
    cpu0, t0 = cpu_seconds(server_pid), time.perf_counter()
    for i in range(size):
        client.deploy(project, "dev", small_app(f"app-{i:04d}"), {"replicas": 1})
    submitted = time.perf_counter() - t0
    while True:
        apps = client.list_apps(project, "dev")
        done = sum(1 for a in apps if a["rollout"] and a["rollout"]["state"] == "succeeded")
        failed = [a["name"] for a in apps if a["rollout"] and a["rollout"]["state"] == "failed"]
        if done + len(failed) == size:
            break
        time.sleep(0.5)  # polling interval of the observer, not a wait for state
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(server_pid) - cpu0
    return {
        "apps": size,
        "failed": len(failed),
        "submit_seconds": round(submitted, 2),
        "seconds_until_all_ready": round(elapsed, 2),
        "seconds_per_app": round(elapsed / size, 4),
        "control_plane_cpu_seconds": round(cpu, 2),
        "cpu_seconds_per_app": round(cpu / size, 4),
        "meets_target": elapsed / size <= ANCHOR_S_PER_APP,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,500,1000")
    parser.add_argument(
        "--crds", action="store_true",
        help="install the prometheus-operator/Istio/Gateway API/KEDA CRDs (apps then also get a "
        "PrometheusRule and a ServiceAccount each)",
    )  # fmt: skip
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="yunzhou-k8s-bench-") as tmp:
        root = Path(tmp)
        # kwok nodes hold 110 pods each: enough nodes that the cluster's capacity is never the limit
        nodes = sum(sizes) // 100 + 2
        with (
            K8sTestEnv(root / "k8s", nodes=nodes, crds=args.crds) as k8s,
            ControlPlaneProcess(root / "data") as server,
        ):
            assert server.process is not None
            with YunzhouClient(server.url, server.admin_token, timeout=60) as client:
                client.add_cluster("kwok", yaml.safe_load(k8s.kubeconfig.read_text()))
                for size in sizes:
                    try:
                        results.append(run_size(client, server.process.pid, f"bench{size}", size))
                    except Exception:
                        print(server.log()[-4000:], file=sys.stderr)  # what the server said
                        raise
    report = {
        "benchmark": "k8s_scale",
        "anchor_seconds_per_app": ANCHOR_S_PER_APP,
        "machine_cpus": os.cpu_count(),
        "kwok_nodes": nodes,
        "crds": args.crds,
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
