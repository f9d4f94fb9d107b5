"""Router metrics, relabelled: the router counts by app key ``project/env/app`` (its route table's ``app``);
the store gets ``project``, ``env`` and ``app`` labels instead, so queries can aggregate by any of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from yunzhou.observe.metrics.exposition import Sample, parse


def split_app_key(key: str) -> dict[str, str] | None:
    """``"shop/dev/orders"`` → ``{"project": "shop", "env": "dev", "app": "orders"}``; None if not a key."""
    parts = key.split("/")
    if len(parts) != 3 or not all(parts):
        return None
    return {"project": parts[0], "env": parts[1], "app": parts[2]}


def relabel(labels: Mapping[str, str]) -> dict[str, str]:
    """Replace an ``app`` label holding an app key by project/env/app, and the router's ``backend`` (an
    instance id) by ``instance`` as the instance series call it; anything else is kept as it is."""
    out = {("instance" if k == "backend" else k): v for k, v in labels.items()}
    key = out.get("app")
    parts = split_app_key(key) if key else None
    if parts is not None:
        del out["app"]
        out.update(parts)
    return out


class RouterCollector:
    """Reads the router's ``/metrics`` (text from ``fetch``) and relabels it."""

    name = "router"

    def __init__(self, fetch: Callable[[], str]) -> None:
        self.fetch = fetch
        self.types: dict[str, str] = {}
        self.help: dict[str, str] = {}

    def collect(self, now: float) -> Iterable[Sample]:
        exposition = parse(self.fetch())
        self.types = exposition.types
        self.help = exposition.helps
        return [Sample(s.name, relabel(s.labels), s.value) for s in exposition.samples]
