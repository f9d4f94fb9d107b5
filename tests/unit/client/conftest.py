from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.client.fake_api import ADMIN_TOKEN, FakeApi
from yunzhou.client import YunzhouClient


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi()


@pytest.fixture
def client(fake: FakeApi) -> Iterator[YunzhouClient]:
    with YunzhouClient(
        "http://yunzhou.test", ADMIN_TOKEN, transport=fake.transport, sleep=fake.sleep, clock=fake.clock
    ) as client:
        yield client
