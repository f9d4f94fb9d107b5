from __future__ import annotations

from collections.abc import Iterator

import pytest

from yunzhou.observe.metrics import MetricStore, QueryEngine


@pytest.fixture
def store() -> Iterator[MetricStore]:
    s = MetricStore.open(None)
    yield s
    s.close()


@pytest.fixture
def engine(store: MetricStore) -> QueryEngine:
    return QueryEngine(store)
