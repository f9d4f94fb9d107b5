"""Upgrade passthrough, the pure parts: which offered protocols are passed on, and the tunnel metrics."""

from __future__ import annotations

import pytest

from yunzhou.router.metrics import RouterMetrics
from yunzhou.router.proxy import tunnelled_protocols

from .test_router_observability import samples


@pytest.mark.parametrize(
    ("offered", "passed_on"),
    [
        (b"websocket", b"websocket"),
        (b"WebSocket", b"WebSocket"),
        (b"foo/2, bar", b"foo/2, bar"),
        (b"h2c", None),  # cleartext HTTP/2 would carry many requests past the per-request policy
        (b"H2C", None),
        (b"h2c, websocket", b"websocket"),
        (b" , ", None),
    ],
)
def test_tunnelled_protocols_drop_h2c_and_keep_the_rest(offered: bytes, passed_on: bytes | None) -> None:
    assert tunnelled_protocols(offered) == passed_on


def test_upgrade_outcomes_open_tunnels_and_closed_tunnels_are_rendered() -> None:
    metrics = RouterMetrics()
    app = "shop/dev/chat"
    for _ in range(2):
        metrics.upgrade_outcome(app, "switched")
        metrics.tunnel_opened(app)
    metrics.upgrade_outcome(app, "refused")
    metrics.tunnel_closed(app, "idle_timeout")
    found = samples(metrics.render())
    assert found[f'yunzhou_router_upgrades_total{{app="{app}",outcome="switched"}}'] == 2
    assert found[f'yunzhou_router_upgrades_total{{app="{app}",outcome="refused"}}'] == 1
    assert found[f'yunzhou_router_tunnels{{app="{app}"}}'] == 1
    assert found[f'yunzhou_router_tunnels_closed_total{{app="{app}",by="idle_timeout"}}'] == 1
