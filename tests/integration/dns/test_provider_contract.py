"""What every DNS provider does, against its real server: records written through the provider are what
the server answers over DNS; replacing, deleting and listing behave the same everywhere."""

from __future__ import annotations

import pytest

from tests.integration.dns.conftest import ProviderCase
from yunzhou.domain.errors import UserError
from yunzhou.names.dns import DnsRecord, RecordType
from yunzhou.testing.polling import wait_until

APP = "orders.dev.shop.example.test"
CHALLENGE = "_yunzhou-challenge.orders.example.test"


def test_upsert_a_and_txt_are_answered_over_dns(case: ProviderCase) -> None:
    a = case.provider.upsert(case.zone, APP, "A", ["10.0.0.2", "10.0.0.1"], 60)
    txt = case.provider.upsert(case.zone, CHALLENGE, "txt", ['token="abc def"; v=1'], 120)

    assert a == DnsRecord(APP, RecordType.A, 60, ("10.0.0.1", "10.0.0.2"))
    assert txt == DnsRecord(CHALLENGE, RecordType.TXT, 120, ('token="abc def"; v=1',))
    wait_until("A answered", lambda: case.answer(APP, "A") == ["10.0.0.1", "10.0.0.2"], timeout=10)
    wait_until("TXT answered", lambda: case.answer(CHALLENGE, "TXT") == ['token="abc def"; v=1'], timeout=10)


def test_upsert_replaces_the_values_and_ttl(case: ProviderCase) -> None:
    case.provider.upsert(case.zone, APP, "A", ["10.0.0.1", "10.0.0.2"], 60)
    case.provider.upsert(case.zone, APP, "A", ["10.0.0.3"], 300)

    wait_until("the new A answered", lambda: case.answer(APP, "A") == ["10.0.0.3"], timeout=10)
    [record] = [r for r in case.provider.list_records(case.zone) if r.name == APP]
    assert record == DnsRecord(APP, RecordType.A, 300, ("10.0.0.3",))


def test_delete_removes_only_that_type_and_is_idempotent(case: ProviderCase) -> None:
    case.provider.upsert(case.zone, APP, "A", ["10.0.0.1"], 60)
    case.provider.upsert(case.zone, APP, "TXT", ["owner=yunzhou"], 60)

    case.provider.delete(case.zone, APP, "A")
    case.provider.delete(case.zone, APP, "A")  # already gone: not an error

    wait_until("A gone", lambda: case.answer(APP, "A") == [], timeout=10)
    assert case.answer(APP, "TXT") == ["owner=yunzhou"]
    assert [(r.name, r.type) for r in case.provider.list_records(case.zone) if r.name == APP] == [
        (APP, RecordType.TXT)
    ]


def test_list_records_returns_every_managed_type_but_not_the_zones_own(case: ProviderCase) -> None:
    case.provider.upsert(case.zone, APP, "AAAA", ["2001:db8::1"], 60)
    case.provider.upsert(case.zone, "www.example.test", "CNAME", [APP], 60)

    records = case.provider.list_records(case.zone)

    assert DnsRecord(APP, RecordType.AAAA, 60, ("2001:db8::1",)) in records
    assert DnsRecord("www.example.test", RecordType.CNAME, 60, (APP,)) in records
    assert {r.type for r in records} <= set(RecordType)  # SOA and NS are the zone's, not listed
    assert case.answer("www.example.test", "CNAME") == [APP]


@pytest.mark.parametrize(
    ("name", "type", "values", "ttl", "field"),
    [
        ("a.other.test", "A", ["10.0.0.1"], 60, "name"),
        (APP, "MX", ["10 mail.example.test"], 60, "type"),
        (APP, "A", ["10.0.0.300"], 60, "values[0]"),
        (APP, "A", ["10.0.0.1"], 0, "ttl"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    case: ProviderCase, name: str, type: str, values: list[str], ttl: int, field: str
) -> None:
    before = case.provider.list_records(case.zone)
    with pytest.raises(UserError) as caught:
        case.provider.upsert(case.zone, name, type, values, ttl)
    assert [p.path for p in caught.value.problems] == [field]
    assert case.provider.list_records(case.zone) == before
