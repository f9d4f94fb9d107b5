"""Names, platform settings and the access rule: pure, no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from yunzhou.domain.access import Permission, Role, Scope, may, parse_role, parse_scopes
from yunzhou.domain.errors import UserError
from yunzhou.domain.names import check_label, is_dns_name, parse_app_address, parse_env_address
from yunzhou.domain.settings import RolloutStrategy, for_environment, merge_patch, parse_settings, set_dotted


@pytest.mark.parametrize("good", ["a", "shop", "my-app-2", "0", "a" * 63])
def test_dns_labels_accepted(good: str) -> None:
    assert check_label(good, "name") == good


@pytest.mark.parametrize("bad", ["", "-a", "a-", "Shop", "a_b", "a.b", "a" * 64, "ünï", "shop\n"])
def test_dns_labels_rejected_with_what_is_allowed(bad: str) -> None:
    with pytest.raises(UserError) as exc:
        check_label(bad, "name")
    assert exc.value.problems[0].path == "name"
    assert "a-z, 0-9 and '-'" in exc.value.problems[0].message


def test_addresses() -> None:
    assert str(parse_app_address("shop/dev/orders")) == "shop/dev/orders"
    assert parse_env_address("shop/dev").env == "dev"
    with pytest.raises(UserError, match="PROJECT/ENV/APP"):
        parse_app_address("shop/dev")
    with pytest.raises(UserError) as exc:
        parse_app_address("shop/Dev/orders")
    assert [p.path for p in exc.value.problems] == ["app.env"]


def test_settings_defaults_are_zero_downtime() -> None:
    s = parse_settings(None)
    assert s.replicas is None
    assert s.rollout == RolloutStrategy("rolling", 1, 0)
    assert s.rollout.resolve(4) == (1, 0)


def test_percentages_round_like_kubernetes() -> None:
    assert RolloutStrategy("rolling", "25%", "25%").resolve(10) == (3, 2)
    assert RolloutStrategy("rolling", "0%", "10%").resolve(5) == (1, 0)  # never stuck at (0, 0)


def test_environment_overrides_deep_merge() -> None:
    doc = {
        "replicas": 1,
        "rollout": {"maxSurge": 2},
        "environments": {"prod": {"rollout": {"maxUnavailable": 1}}},
    }
    assert for_environment(doc, "prod") == {"replicas": 1, "rollout": {"maxSurge": 2, "maxUnavailable": 1}}
    assert for_environment(doc, "dev") == {"replicas": 1, "rollout": {"maxSurge": 2}}
    prod = parse_settings(doc, "prod")
    assert (prod.rollout.max_surge, prod.rollout.max_unavailable) == (2, 1)


def test_settings_collect_every_problem_with_paths() -> None:
    with pytest.raises(UserError) as exc:
        parse_settings(
            {
                "replicas": "3",
                "rollout": {"strategy": "yolo", "maxSurge": "150%", "extra": 1},
                "routes": [{"host": "Bad_Host", "path": "nope"}, "x"],
                "colour": "blue",
            }
        )
    paths = {p.path for p in exc.value.problems}
    assert paths == {
        "settings.colour",
        "settings.replicas",
        "settings.rollout.extra",
        "settings.rollout.strategy",
        "settings.rollout.maxSurge",
        "settings.routes.0.host",
        "settings.routes.0.path",
        "settings.routes.1",
    }


def test_duplicate_routes_rejected() -> None:
    route = {"host": "orders.example.test", "path": "/api"}
    with pytest.raises(UserError) as exc:
        parse_settings({"routes": [route, route]})
    assert exc.value.problems[0].path == "settings.routes.1"


def test_round_trip_and_dotted_keys() -> None:
    doc: dict[str, object] = {}
    set_dotted(doc, "rollout.maxSurge", 2)
    set_dotted(doc, "replicas", 3)
    s = parse_settings(doc)
    assert parse_settings(s.to_dict()) == s


def test_roles_and_scopes() -> None:
    assert Role.OWNER.includes(Role.DEVELOPER)
    assert not Role.VIEWER.includes(Role.DEVELOPER)
    with pytest.raises(UserError, match="allowed: viewer, developer, maintainer, owner"):
        parse_role("god")
    with pytest.raises(UserError) as exc:
        parse_scopes(["read", "root"])
    assert exc.value.problems[0].path == "scopes.1"


@pytest.mark.parametrize(
    ("scopes", "role", "permission", "expected"),
    [
        ({"read"}, Role.OWNER, Permission.APP_DEPLOY, False),  # scope caps the role
        ({"read", "write"}, Role.VIEWER, Permission.APP_DEPLOY, False),
        ({"read", "write"}, Role.DEVELOPER, Permission.APP_DEPLOY, True),
        ({"write"}, Role.VIEWER, Permission.APP_READ, True),  # write implies read
        ({"read", "write"}, None, Permission.APP_READ, False),  # not a member
        ({"admin"}, None, Permission.PROJECT_DELETE, True),
        ({"read", "write"}, Role.MAINTAINER, Permission.MEMBER_WRITE, False),
        ({"read", "write"}, None, Permission.PLATFORM_ADMIN, False),
    ],
)
def test_may(scopes: set[str], role: Role | None, permission: Permission, expected: bool) -> None:
    assert may(frozenset(Scope(s) for s in scopes), role, permission) is expected


def test_permissions_are_distinct_members() -> None:
    # equal enum values would silently alias (APP_READ would *be* PROJECT_READ in the OpenAPI document)
    assert len({p.name for p in Permission}) == len(Permission.__members__)
    assert Permission.APP_READ is not Permission.PROJECT_READ


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("orders.example.test", True),
        ("a", True),
        ("x" * 63 + ".test", True),
        ("Orders.example.test", False),
        ("orders..test", False),
        ("-orders.test", False),
        ("orders.test\n", False),  # both copies of this check once differed here; now there is one
        ("a." * 127 + "b", False),  # 255 characters
        (42, False),
    ],
)
def test_dns_names(value: object, ok: bool) -> None:
    assert is_dns_name(value) is ok


@pytest.mark.parametrize(
    ("base", "patch", "merged"),
    [  # the examples of RFC 7396, appendix A (those whose patch is an object)
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_settings_patch_is_a_json_merge_patch(
    base: dict[str, Any], patch: dict[str, Any], merged: dict[str, Any]
) -> None:
    before = repr(base)
    assert merge_patch(base, patch) == merged
    assert repr(base) == before  # the stored document is never changed in place
