"""The ``pull`` scope: what a cluster's image pull secret carries. It opens the registry's token endpoint
and nothing else; read (and so write) tokens open that endpoint too."""

from __future__ import annotations

import pytest

from yunzhou.domain.access import Permission, Role, Scope, may

PULL_ONLY = frozenset({Scope.PULL})


@pytest.mark.parametrize("permission", [p for p in Permission if p is not Permission.REGISTRY_TOKEN])
def test_a_pull_token_opens_no_other_operation(permission: Permission) -> None:
    assert not may(PULL_ONLY, Role.OWNER, permission)


@pytest.mark.parametrize("scopes", [{"pull"}, {"read"}, {"write"}, {"admin"}])
def test_the_registry_token_endpoint_takes_pull_read_write_and_admin_tokens(scopes: set[str]) -> None:
    assert may(frozenset(Scope(s) for s in scopes), None, Permission.REGISTRY_TOKEN)


def test_a_metrics_token_gets_no_registry_token() -> None:
    assert not may(frozenset({Scope.METRICS}), None, Permission.REGISTRY_TOKEN)
