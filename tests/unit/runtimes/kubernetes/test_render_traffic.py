"""settings.traffic → Istio / Gateway API / NetworkPolicy objects, and canary objects: pure rendering."""

from __future__ import annotations

from typing import Any

from yunzhou.runtimes.kubernetes.render_traffic import (
    HTTP_ROUTE,
    INGRESS_PRINCIPAL,
    VIRTUAL_SERVICE,
    Split,
    canary_objects,
    choose_mode,
    gateway_duration,
    render_traffic,
    seconds,
)
from yunzhou.runtimes.kubernetes.shape import AppShape

W = AppShape("shop", "dev", "orders", "shop.dev.orders", "shop-dev", "Deployment", {"http": 80},
             {"name": "orders", "namespace": "shop-dev"})  # fmt: skip
BOTH = frozenset({VIRTUAL_SERVICE, HTTP_ROUTE})


def objects(
    traffic: dict[str, Any], apis: frozenset[str] = BOTH, **kw: Any
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    rendered, notes = render_traffic(W, {"traffic": traffic}, apis, 3, **kw)
    for o in rendered:
        out.setdefault(o["kind"], []).append(o)
    out["notes"] = [{"text": n} for n in notes]
    return out


def test_mode_per_cluster() -> None:
    assert choose_mode(BOTH) == "istio"
    assert choose_mode(BOTH, "gateway") == "gateway"
    assert choose_mode(frozenset({HTTP_ROUTE})) == "gateway"
    assert choose_mode(frozenset({HTTP_ROUTE}), "istio") is None
    assert choose_mode(frozenset()) is None


def test_durations() -> None:
    assert (seconds(2), seconds(0.5)) == ("2s", "0.5s")
    assert (gateway_duration(2), gateway_duration(0.5), gateway_duration(1.25)) == ("2s", "500ms", "1250ms")


def test_nothing_without_a_policy_and_a_note_without_the_crds() -> None:
    assert render_traffic(W, {}, BOTH, 3) == ([], [])
    got = objects({"timeouts": {"overall": "3s"}}, frozenset())
    assert got["notes"] == [{"text": "traffic policy not rendered: the cluster does not serve Istio's or the "
                                     "Gateway API CRDs"}]  # fmt: skip


def test_istio_split_weights_and_subsets() -> None:
    got = objects({"retries": {"attempts": 2}}, split=Split(stable=3, canary=4, weight=10))
    preview, route = got["VirtualService"][0]["spec"]["http"]
    assert [(r["destination"]["subset"], r["weight"]) for r in route["route"]] == [
        ("stable", 90),
        ("canary", 10),
    ]
    assert preview["match"] == [{"headers": {"x-canary": {"exact": "always"}}}]
    assert [(r["destination"]["subset"], r["weight"]) for r in preview["route"]] == [("canary", 100)]
    no_split = objects({"retries": {"attempts": 2}})["VirtualService"][0]["spec"]["http"]
    assert [r["name"] for r in no_split] == ["default"]  # no rollout: no preview route
    assert route["retries"] == {"attempts": 2, "retryOn": "connect-failure,reset,gateway-error"}
    subsets = got["DestinationRule"][0]["spec"]["subsets"]
    assert [s["labels"]["yunzhou.io/release"] for s in subsets] == ["3", "4"]
    assert got["DestinationRule"][0]["spec"]["trafficPolicy"]["loadBalancer"] == {"simple": "ROUND_ROBIN"}


def test_mtls_renders_a_strict_peer_authentication_and_istio_mutual_only_when_on() -> None:
    got = objects({"mtls": True})
    (peer,) = got["PeerAuthentication"]
    assert peer["apiVersion"] == "security.istio.io/v1"
    assert peer["metadata"]["name"] == "orders"
    assert peer["metadata"]["namespace"] == "shop-dev"
    assert peer["spec"] == {"selector": {"matchLabels": {"yunzhou.io/app": "shop.dev.orders"}},
                            "mtls": {"mode": "STRICT"}}  # fmt: skip
    assert got["DestinationRule"][0]["spec"]["trafficPolicy"]["tls"] == {"mode": "ISTIO_MUTUAL"}
    off = objects({"mtls": False, "timeouts": {"overall": "3s"}})
    assert "PeerAuthentication" not in off
    assert "tls" not in off["DestinationRule"][0]["spec"].get("trafficPolicy", {})


def test_access_becomes_network_policy_and_authorization_policies() -> None:
    access = {
        "default": "allow-environment",
        "allow": ["shop/prod/gateway"],
        "deny": ["billing"],
        "external": False,
    }
    got = objects({"access": access})
    peers = got["NetworkPolicy"][0]["spec"]["ingress"][0]["from"]
    assert peers[0] == {"podSelector": {"matchExpressions": [
        {"key": "yunzhou.io/app", "operator": "NotIn", "values": ["shop.dev.billing"]}]}}  # fmt: skip
    assert peers[1] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop-prod"}},
        "podSelector": {"matchLabels": {"yunzhou.io/app": "shop.prod.gateway"}},
    }
    allow, deny = got["AuthorizationPolicy"]
    assert allow["spec"]["action"] == "ALLOW"
    sources = [r["from"][0]["source"] for r in allow["spec"]["rules"]]
    assert sources == [
        {"principals": ["cluster.local/ns/shop-prod/sa/gateway"]},
        {"namespaces": ["shop-dev"]},
    ]
    assert INGRESS_PRINCIPAL not in str(sources)
    assert deny["metadata"]["name"] == "orders-deny"
    assert deny["spec"]["rules"] == [
        {"from": [{"source": {"principals": ["cluster.local/ns/shop-dev/sa/billing"]}}]}
    ]


def test_default_deny_with_nobody_allowed_is_an_allow_policy_without_rules() -> None:
    got = objects({"access": {"default": "deny", "external": False}})
    assert "rules" not in got["AuthorizationPolicy"][0]["spec"]
    assert "ingress" not in got["NetworkPolicy"][0]["spec"]  # no peers: nothing may connect


def test_gateway_route_and_what_it_cannot_say() -> None:
    traffic = {
        "routes": [{"name": "m", "match": {"path": {"exact": "/x"}, "headers": {"ua": {"prefix": "a.b"}}}}],
        "mtls": True,
        "rateLimit": {"rps": 5, "burst": 5},
    }
    got = objects(traffic, mode="gateway", split=Split(1, 2, 30))
    rules = got["HTTPRoute"][0]["spec"]["rules"]
    header = {"type": "RegularExpression", "name": "ua", "value": r"^a\.b.*"}
    assert rules[0]["matches"] == [{"path": {"type": "Exact", "value": "/x"}, "headers": [header]}]
    preview = {"type": "Exact", "name": "x-canary", "value": "always"}
    assert rules[1]["matches"] == [{"headers": [preview]}]  # the pinned preview, before the split
    assert [(b["name"], b["weight"]) for b in rules[1]["backendRefs"]] == [("orders-canary", 100)]
    assert [(b["name"], b["weight"]) for b in rules[2]["backendRefs"]] == [
        ("orders-stable", 70),
        ("orders-canary", 30),
    ]
    assert len(rules) == 3
    assert [s["metadata"]["name"] for s in got["Service"]] == ["orders-stable", "orders-canary"]
    notes = " | ".join(n["text"] for n in got["notes"])
    assert "rateLimit not rendered" in notes
    assert "mtls not rendered" in notes


def test_canary_objects_rename_config_and_select_their_release() -> None:
    release_objects = [
        {"kind": "ConfigMap", "metadata": {"name": "orders-web-env"}, "data": {"A": "1"}},
        {"kind": "Service", "metadata": {"name": "orders"}},
        {"kind": "Deployment", "metadata": {"name": "orders", "annotations": {"x": "y"}}, "spec": {
            "replicas": 2, "selector": {"matchLabels": {"yunzhou.io/app": "shop.dev.orders"}},
            "template": {"metadata": {}, "spec": {
                "containers": [{"name": "web", "envFrom": [{"configMapRef": {"name": "orders-web-env"}}]}],
                "volumes": [{"name": "files", "secret": {"secretName": "other"}}]}}}},
    ]  # fmt: skip
    out = canary_objects(release_objects, "orders", 7)
    assert [(o["kind"], o["metadata"]["name"]) for o in out] == [
        ("ConfigMap", "orders-web-env-canary"), ("Deployment", "orders-canary")]  # fmt: skip
    dep = out[1]
    assert dep["spec"]["selector"]["matchLabels"]["yunzhou.io/release"] == "7"
    assert dep["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [
        {"configMapRef": {"name": "orders-web-env-canary"}}]  # fmt: skip
    assert dep["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"] == "other"
    assert "annotations" not in dep["metadata"]
