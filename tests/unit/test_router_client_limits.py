"""The server's router takes its slow-client guards from YUNZHOU_ROUTER_* (docs/router.md)."""

from __future__ import annotations

import pytest

from yunzhou.local_platform import RouterClientLimits


def test_defaults_match_the_router_flags() -> None:
    assert RouterClientLimits.from_env({}) == RouterClientLimits(10.0, 30.0, 256)


def test_each_variable_sets_its_limit() -> None:
    env = {
        "YUNZHOU_ROUTER_HEADER_TIMEOUT": "2.5",
        "YUNZHOU_ROUTER_BODY_TIMEOUT": "7",
        "YUNZHOU_ROUTER_MAX_CONNECTIONS_PER_CLIENT": "32",
    }
    assert RouterClientLimits.from_env(env) == RouterClientLimits(2.5, 7.0, 32)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("YUNZHOU_ROUTER_HEADER_TIMEOUT", "0"),
        ("YUNZHOU_ROUTER_BODY_TIMEOUT", "forever"),
        ("YUNZHOU_ROUTER_MAX_CONNECTIONS_PER_CLIENT", "0"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_range(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}={value!r}: must be a number of \w+ from "):
        RouterClientLimits.from_env({name: value})
