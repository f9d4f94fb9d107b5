"""What a scoped rule may read: on the embedded store, every selector of a project's (environment's,
app's) rule gets the scope's labels added, as prom-label-proxy enforces a tenant label — so a project's rule
never sees another project's series, nor the platform's own (host) series. A remote Prometheus is asked
as is (there the scope only decides which app an alert is about and which project is told)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from yunzhou.observe.metrics import Matcher, QueryEngine, SeriesSamples
from yunzhou.services.alerts import RuleScope


class _ScopedSource:
    def __init__(self, source: Any, enforced: Sequence[Matcher]) -> None:
        self._source = source
        self._enforced = list(enforced)

    def select(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> Iterable[SeriesSamples]:
        selected: Iterable[SeriesSamples] = self._source.select([*matchers, *self._enforced], mint, maxt)
        return selected


def scoped_engine(engine: Any, scope: RuleScope) -> Any:
    """``engine`` restricted to ``scope``'s series (the embedded engine, a scope narrower than global)."""
    if not scope.project or not isinstance(engine, QueryEngine):
        return engine
    labels = (("project", scope.project), ("env", scope.env), ("app", scope.app))
    enforced = [Matcher.make(name, "=", value) for name, value in labels if value]
    return QueryEngine(
        _ScopedSource(engine.store, enforced),
        lookback=engine.lookback_ms / 1000,
        max_samples=engine.max_samples,
    )
