"""The kubeconfig rule on its own: what may reach the client, and each refusal's path (issue 14, item 6)."""

from __future__ import annotations

from typing import Any

import pytest

from yunzhou.domain.errors import UserError
from yunzhou.domain.kubeconfig import check_kubeconfig, kubeconfig_problems


def doc(user: dict[str, Any], cluster: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": "https://k8s.example:6443", **(cluster or {})}}],
        "users": [{"name": "u", "user": user}],
    }


def test_inline_credentials_pass() -> None:
    flat = doc(
        {"client-certificate-data": "Y2VydA==", "client-key-data": "a2V5", "token": "t"},
        {"certificate-authority-data": "Y2E=", "insecure-skip-tls-verify": False, "tls-server-name": "k8s"},
    )
    assert check_kubeconfig(flat) is flat


@pytest.mark.parametrize(
    ("user", "cluster", "path"),
    [
        ({"exec": {"command": "id"}}, {}, "kubeconfig.users[0].user.exec"),
        ({"auth-provider": {"name": "gcp"}}, {}, "kubeconfig.users[0].user.auth-provider"),
        ({"tokenFile": "/data/admin-token"}, {}, "kubeconfig.users[0].user.tokenFile"),
        ({"client-key": "key.pem"}, {}, "kubeconfig.users[0].user.client-key"),
        ({"client-certificate": "c.pem"}, {}, "kubeconfig.users[0].user.client-certificate"),
        ({"as": "system:admin"}, {}, "kubeconfig.users[0].user.as"),
        (
            {"token": "t"},
            {"certificate-authority": "/ca.pem"},
            "kubeconfig.clusters[0].cluster.certificate-authority",
        ),
        ({"token": "t"}, {"proxy-url": "http://proxy:3128"}, "kubeconfig.clusters[0].cluster.proxy-url"),
        ({"token": "t"}, {"ca-file": "/ca.pem"}, "kubeconfig.clusters[0].cluster.ca-file"),
        ({"passwordPath": "/pw"}, {}, "kubeconfig.users[0].user.passwordPath"),
    ],
)
def test_each_host_reference_is_refused_at_its_path(
    user: dict[str, Any], cluster: dict[str, Any], path: str
) -> None:
    with pytest.raises(UserError) as refused:
        check_kubeconfig(doc(user, cluster))
    assert [p.path for p in refused.value.problems] == [path]


def test_exec_passes_only_when_allowed_and_files_never_do() -> None:
    assert kubeconfig_problems(doc({"exec": {"command": "aws"}}), allow_exec=True) == []
    problems = kubeconfig_problems(doc({"exec": {"command": "aws"}, "tokenFile": "/t"}), allow_exec=True)
    assert [p.path for p in problems] == ["kubeconfig.users[0].user.tokenFile"]


def test_malformed_documents_name_the_part() -> None:
    assert [p.path for p in kubeconfig_problems([])] == ["kubeconfig"]
    broken = {"clusters": [{"name": "c", "cluster": "x"}], "users": ["u"], "contexts": []}
    assert [p.path for p in kubeconfig_problems(broken)] == [
        "kubeconfig.contexts",
        "kubeconfig.users[0]",
        "kubeconfig.clusters[0].cluster",
    ]
