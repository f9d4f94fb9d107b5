"""Naming rules: which rules are accepted, and the names they give."""

from __future__ import annotations

import pytest

from yunzhou.domain.errors import UserError
from yunzhou.domain.names import NAMING_RULE_DEFAULT, check_naming_rule, render_naming_rule


@pytest.mark.parametrize(
    ("rule", "name"),
    [
        (NAMING_RULE_DEFAULT, "orders.prod.shop.example.test"),
        ("{app}-{env}.{project}.{zone}", "orders-prod.shop.example.test"),
        ("{app}.{project}.apps.{zone}", "orders.shop.apps.example.test"),
        ("{project}-{app}.{zone}", "shop-orders.example.test"),
    ],
)
def test_a_rule_gives_each_app_its_name(rule: str, name: str) -> None:
    assert check_naming_rule(rule) == rule
    assert render_naming_rule(rule, app="orders", env="prod", project="shop", zone="example.test") == name


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("{app}.{zone}", "{project}"),  # two projects' apps would share names
        ("{project}.{zone}", "{app}"),
        ("{app}.{project}.example.test", ".{zone}"),  # names must stay in the zone
        ("{app}.{project}.{zone}.evil", ".{zone}"),
        ("{app}.{project}.{zone}.{zone}", ".{zone}"),
        ("{app}.{project}.{host}.{zone}", "{host}"),
        ("{app}_x.{project}.{zone}", "DNS labels"),
        ("{app}..{project}.{zone}", "DNS labels"),
        ("", "must be a string"),
        (None, "must be a string"),
    ],
)
def test_a_bad_rule_is_refused_saying_why(rule: object, why: str) -> None:
    with pytest.raises(UserError) as refused:
        check_naming_rule(rule)
    assert refused.value.problems[0].path == "names.rule"
    assert why in refused.value.problems[0].message


def test_a_name_longer_than_dns_allows_is_refused() -> None:
    with pytest.raises(UserError, match="not a DNS name"):
        render_naming_rule(NAMING_RULE_DEFAULT, app="a" * 63, env="b" * 63, project="c" * 63, zone="d" * 63)
