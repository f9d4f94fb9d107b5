from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from yunzhou.observe import LogRecord, LogRetention, LogStore

APP = "shop/dev/orders"
T0 = 1_700_000_000.0

MakeStore = Callable[..., LogStore]


def record(
    line: str,
    *,
    app: str = APP,
    time: float = T0,
    instance: str = "orders-1",
    stream: str = "stdout",
    release: int | None = 1,
    **fields: object,
) -> LogRecord:
    return LogRecord(
        time=time, app=app, instance=instance, stream=stream, line=line, release=release, fields=fields
    )


@pytest.fixture(params=[True, False], ids=["fts", "like"])
def full_text(request: pytest.FixtureRequest) -> bool:
    """Both ways of answering --grep: the trigram index, and the LIKE scan used without FTS5."""
    flag: bool = request.param
    return flag


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[MakeStore]:
    stores: list[LogStore] = []

    def make(**kwargs: object) -> LogStore:
        kwargs.setdefault("retention", LogRetention(max_bytes=None, max_age_days=None, interval_s=3600))
        store = LogStore(tmp_path / "logs.db", **kwargs)  # type: ignore[arg-type]
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def store(make_store: MakeStore) -> LogStore:
    return make_store()
