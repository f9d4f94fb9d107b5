"""Rendering releases into Kubernetes objects: pure, deterministic, labelled, and complete."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from typing import Any

import pytest

from yunzhou.domain.errors import PermanentError
from yunzhou.runtimes.kubernetes.render import APP_LABEL, CHECKSUM, Target, render
from yunzhou.runtimes.protocol import AppIntent, RouteSpec

TARGET = Target(namespace="shop-dev", base_domain="apps.example.test")


def intent(
    score: dict[str, Any],
    *,
    replicas: int = 3,
    release: int = 1,
    settings: dict[str, Any] | None = None,
    routes: tuple[RouteSpec, ...] = (RouteSpec("orders.dev.shop.localhost"),),
) -> AppIntent:
    return AppIntent(
        app_id=1,
        address="shop/dev/orders",
        release=release,
        score=score,
        settings=settings or {},
        artifact=None,
        artifact_digest=None,
        replicas=replicas,
        removing=False,
        routes=routes,
        target="cluster:kwok",
        namespace="shop-dev",
    )


def web(**container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "orders"},
        "containers": {"web": {"image": "registry.test/orders:1.0", **container}},
        "service": {"ports": {"http": {"port": 80, "targetPort": 8080}}},
    }


def kinds(objs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(o["kind"], o["metadata"]["name"]) for o in objs]


def one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objs if o["kind"] == kind]
    return found


def test_a_web_app_becomes_deployment_service_ingress_and_pdb() -> None:
    objs = render(
        intent(
            web(
                variables={"MODE": "fast"},
                command=["/app"],
                args=["--serve"],
                resources={"limits": {"cpu": "250m", "memory": "128Mi"}},
                readinessProbe={"httpGet": {"path": "/ready", "port": 8080}},
            )
        ),
        TARGET,
    )
    assert kinds(objs) == [
        ("ConfigMap", "orders-web-env"),
        ("Service", "orders"),
        ("Deployment", "orders"),
        ("PodDisruptionBudget", "orders"),
        ("Ingress", "orders"),
    ]
    for o in objs:
        assert o["metadata"]["namespace"] == "shop-dev"
        assert o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "yunzhou"
        assert o["metadata"]["labels"][APP_LABEL] == "shop.dev.orders"
        assert o["metadata"]["labels"]["yunzhou.io/release"] == "1"
    dep = one(objs, "Deployment")
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["selector"] == {"matchLabels": {APP_LABEL: "shop.dev.orders"}}
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "registry.test/orders:1.0"
    assert (c["command"], c["args"]) == (["/app"], ["--serve"])
    assert c["envFrom"] == [{"configMapRef": {"name": "orders-web-env"}}]
    assert c["resources"] == {"limits": {"cpu": "250m", "memory": "128Mi"}}
    assert c["readinessProbe"] == {"httpGet": {"path": "/ready", "port": 8080}}
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["env"] == [{"name": "PORT", "value": "8080"}]  # the port to listen on, as on the local target
    svc = one(objs, "Service")
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
    ing = one(objs, "Ingress")
    assert ing["spec"]["rules"][0]["host"] == "orders.dev.shop.apps.example.test"  # the cluster's base domain
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == {
        "name": "orders",
        "port": {"name": "http"},
    }


def test_rendering_is_deterministic_and_config_changes_roll_pods() -> None:
    a = render(intent(web(variables={"MODE": "fast"})), TARGET)
    assert render(intent(web(variables={"MODE": "fast"})), TARGET) == a
    b = render(intent(web(variables={"MODE": "slow"})), TARGET)

    def checksum(objs: list[dict[str, Any]]) -> str:
        return str(one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"][CHECKSUM])

    assert checksum(a) != checksum(b)


def test_one_replica_has_no_pdb_and_no_ports_means_no_service_or_ingress() -> None:
    doc = web()
    del doc["service"]
    objs = render(intent(doc, replicas=1), TARGET)
    assert kinds(objs) == [("Deployment", "orders")]


def test_settings_routes_and_rollout_strategy() -> None:
    objs = render(
        intent(
            web(),
            settings={"rollout": {"maxSurge": "50%", "maxUnavailable": 1}},
            routes=(RouteSpec("orders.dev.shop.localhost"), RouteSpec("shop.example.test", "/orders")),
        ),
        TARGET,
    )
    assert one(objs, "Deployment")["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": "50%",
        "maxUnavailable": 1,
    }
    hosts = {r["host"]: r["http"]["paths"][0]["path"] for r in one(objs, "Ingress")["spec"]["rules"]}
    assert hosts == {"orders.dev.shop.apps.example.test": "/", "shop.example.test": "/orders"}


def test_volume_resources_make_a_statefulset() -> None:
    doc = web(volumes={"/data": {"source": "data"}})
    doc["resources"] = {"data": {"type": "volume", "params": {"size": "5Gi"}}}
    objs = render(intent(doc), TARGET)
    sts = one(objs, "StatefulSet")
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "data", "mountPath": "/data", "readOnly": False},
        {"name": "yunzhou-tmp", "mountPath": "/tmp"},
    ]
    assert not [o for o in objs if o["kind"] == "Deployment"]


def test_inline_files_are_mounted_from_a_configmap() -> None:
    objs = render(intent(web(files={"/etc/app.conf": {"content": "a=1\n", "mode": "0600"}})), TARGET)
    cm = next(o for o in objs if o["metadata"]["name"] == "orders-web-files")
    assert cm["data"] == {"file-0": "a=1\n"}
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {
            "name": "files",
            "configMap": {
                "name": "orders-web-files",
                "items": [{"key": "file-0", "path": "file-0", "mode": 0o600}],
            },
        },
        {"name": "yunzhou-tmp", "emptyDir": {}},
    ]
    assert pod["containers"][0]["volumeMounts"][0]["mountPath"] == "/etc/app.conf"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (
            lambda d: d["containers"]["web"].update(files={"/x": {"source": "x.txt"}}),
            "containers.web.files./x.source",
        ),
        (lambda d: d["containers"]["web"].update(volumes={"/d": {"source": "nope"}}), "resources"),
    ],
)
def test_what_cannot_be_rendered_is_a_permanent_error_naming_the_field(change: Any, path: str) -> None:
    doc = web()
    change(doc)
    with pytest.raises(PermanentError) as exc:
        render(intent(doc), TARGET)
    assert exc.value.problems[0].path == path


def configured(**container: Any) -> dict[str, Any]:
    doc = web(**container)
    doc["resources"] = {"env": {"type": "environment"}, "creds": {"type": "secret"}}
    return doc


def with_outputs(doc: dict[str, Any], outputs: dict[str, dict[str, str]], release: int = 1) -> AppIntent:
    base = intent(doc, release=release)
    return AppIntent(**{**base.__dict__, "resource_outputs": outputs})


OUTPUTS = {"env": {"MODE": "fast"}, "creds": {"DB_PASSWORD": "s3cr3t-canary"}}


def test_config_goes_to_a_configmap_and_secrets_to_a_secret() -> None:
    doc = configured(
        variables={"MODE": "${resources.env.MODE}", "DSN": "pg://app:${resources.creds.DB_PASSWORD}@db"}
    )
    objs = render(with_outputs(doc, OUTPUTS), TARGET)
    cm = next(o for o in objs if o["metadata"]["name"] == "orders-web-env")
    assert cm["data"] == {"MODE": "fast"}
    secret = one(objs, "Secret")
    assert secret["metadata"]["name"] == "orders-web-secret-env"
    assert base64.b64decode(secret["data"]["DSN"]).decode() == "pg://app:s3cr3t-canary@db"
    (c,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert c["envFrom"] == [
        {"configMapRef": {"name": "orders-web-env"}},
        {"secretRef": {"name": "orders-web-secret-env"}},
    ]
    # the secret appears nowhere but in the Secret object, not even hashed into the pod template
    others = json.dumps([o for o in objs if o["kind"] != "Secret"])
    assert "s3cr3t-canary" not in others
    assert hashlib.sha256(b"s3cr3t-canary").hexdigest() not in others


def test_a_config_change_changes_the_pod_template() -> None:
    doc = configured(variables={"MODE": "${resources.env.MODE}"})
    a = one(render(with_outputs(doc, OUTPUTS, release=1), TARGET), "Deployment")["spec"]["template"]
    b = one(render(with_outputs(doc, {**OUTPUTS, "env": {"MODE": "slow"}}, release=2), TARGET), "Deployment")
    assert a != b["spec"]["template"]
    assert (
        a["metadata"]["annotations"][CHECKSUM] != b["spec"]["template"]["metadata"]["annotations"][CHECKSUM]
    )


def test_secrets_in_arguments_are_refused_and_files_with_secrets_come_from_a_secret() -> None:
    with pytest.raises(PermanentError) as exc:
        render(with_outputs(configured(args=["--password=${resources.creds.DB_PASSWORD}"]), OUTPUTS), TARGET)
    assert exc.value.problems[0].path == "containers.web.args"
    doc = configured(files={"/etc/db.conf": {"content": "password=${resources.creds.DB_PASSWORD}\n"}})
    objs = render(with_outputs(doc, OUTPUTS), TARGET)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["volumes"][0]["secret"]["secretName"] == "orders-web-files"
    assert not [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "orders-web-files"]


def test_the_progress_deadline_and_crash_messages_are_rendered() -> None:
    plain = one(render(intent(web()), TARGET), "Deployment")["spec"]
    assert plain["progressDeadlineSeconds"] == 600  # the default, as Kubernetes' own
    short = intent(web(), settings={"rollout": {"strategy": "rolling", "progressDeadlineSeconds": 90}})
    deployment = one(render(short, TARGET), "Deployment")["spec"]
    assert deployment["progressDeadlineSeconds"] == 90
    # a crashed container's last log lines become its terminated state's message (yunzhou status)
    (container,) = deployment["template"]["spec"]["containers"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_an_environment_without_egress_gets_a_network_policy_that_keeps_pods_inside_the_cluster() -> None:
    # the environment's egress policy (also the local target's NAT): off, the pods reach other pods (apps,
    # DNS) and nothing outside; on, no such policy is rendered (and the applier prunes one left over)
    base = intent(web())
    assert all(o["kind"] != "NetworkPolicy" for o in render(base, TARGET))
    closed = render(replace(base, egress=False), TARGET)
    (policy,) = [o for o in closed if o["kind"] == "NetworkPolicy"]
    assert policy["metadata"]["name"] == "orders-no-egress"
    assert policy["metadata"]["namespace"] == "shop-dev"
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {APP_LABEL: "shop.dev.orders"}},
        "policyTypes": ["Egress"],
        "egress": [{"to": [{"namespaceSelector": {}}]}],
    }
    deployment = one(closed, "Deployment")
    assert deployment["spec"]["template"]["metadata"]["labels"][APP_LABEL] == "shop.dev.orders"
