"""Pod logs read from a cluster are masked as the local target's are (issue 14, security item 8): the
release's secret values (and the previous release's, during a canary) become ***. Real pod logs need a
kubelet, which the test control plane's kwok nodes do not run, so the client is a stand-in that answers
the two calls the reader makes."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from yunzhou.runtimes.kubernetes.runtime import KubernetesRuntime
from yunzhou.runtimes.protocol import AppIntent

SECRET, OLD = "n3w-s3cret-value", "0ld-s3cret-value"
SCORE = {"resources": {"creds": {"type": "secret"}, "env": {"type": "environment"}}}


class PodLogs:
    def __init__(self, lines: dict[str, list[str]]) -> None:
        self.lines = lines

    def list(self, kind: Any, *, namespace: str, labels: dict[str, str]) -> list[Any]:
        return [
            SimpleNamespace(
                metadata=SimpleNamespace(name=name, labels={"yunzhou.io/release": "2"}),
                spec=SimpleNamespace(nodeName="node-1"),
            )
            for name in self.lines
        ]

    def log(self, name: str, **kwargs: Any) -> list[str]:
        return self.lines[name]


def _intent(release: int, secret: str) -> AppIntent:
    return AppIntent(
        app_id=1, address="shop/dev/web", release=release, score=SCORE, settings={}, artifact=None,
        artifact_digest=None, replicas=1, removing=False, routes=(), target="cluster:c1",
        namespace="shop-dev",
        resource_outputs={"creds": {"API_KEY": secret}, "env": {"MODE": "debug-mode"}},
    )  # fmt: skip


def test_pod_log_lines_mask_the_releases_secrets_and_the_previous_ones() -> None:
    client = PodLogs({
        "web-a": [f"2027-01-15T08:00:00Z key={SECRET}", '2027-01-15T08:00:01Z {"api_key": "' + SECRET + '"}'],
        "web-b": [f"2027-01-15T08:00:02Z old key={OLD} mode=debug-mode"],
    })  # fmt: skip
    runtime = KubernetesRuntime(lambda cluster: (client, "example.test"))
    intent = replace(_intent(2, SECRET), previous=_intent(1, OLD))
    records = runtime.logs(intent, since_seconds=None, instance=None, limit=100)
    assert [r["line"] for r in records] == [
        "key=***",
        '{"api_key": "***"}',
        "old key=*** mode=debug-mode",  # a config variable is no secret: shown
    ]
