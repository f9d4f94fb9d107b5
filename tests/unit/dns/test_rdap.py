"""RDAP domain objects (RFC 9083): the registration's expiration event; registered-domain names."""

from __future__ import annotations

import datetime as dt

import pytest

from yunzhou.domain.errors import PermanentError, UserError
from yunzhou.names.rdap import expiration_of
from yunzhou.services.watched_domains import parse_registered_domain


def test_expiration_is_the_expiration_event_in_utc() -> None:
    doc = {
        "objectClassName": "domain",
        "ldhName": "EXAMPLE.COM",
        "events": [
            {"eventAction": "registration", "eventDate": "1995-08-14T04:00:00Z"},
            {"eventAction": "expiration", "eventDate": "2027-08-13T04:00:00+08:00"},
            {"eventAction": "last update of RDAP database", "eventDate": "2026-12-07T00:00:00Z"},
        ],
    }
    assert expiration_of(doc) == dt.datetime(2027, 8, 12, 20, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ([], "not an RDAP domain object"),
        ({"objectClassName": "entity", "events": []}, "not an RDAP domain object"),
        ({"objectClassName": "domain"}, "no events list"),
        ({"events": [{"eventAction": "registration", "eventDate": "1995-08-14T04:00:00Z"}]}, "'expiration'"),
        ({"events": [{"eventAction": "expiration", "eventDate": "next year"}]}, r"events[0].eventDate"),
    ],
)
def test_answers_without_a_usable_expiration_are_permanent_errors_naming_the_field(
    doc: object, says: str
) -> None:
    with pytest.raises(PermanentError) as refused:
        expiration_of(doc)
    assert says in str(refused.value)


def test_registered_domains_are_normalised_and_bad_ones_name_the_field() -> None:
    assert parse_registered_domain(" Example.COM. ") == "example.com"
    assert parse_registered_domain("xn--fiqs8s.xn--fiqz9s") == "xn--fiqs8s.xn--fiqz9s"
    for bad in ("com", "", "exa mple.com", "-a.com", "a..com", "例子.中国", 5, "a" * 64 + ".com"):
        with pytest.raises(UserError) as refused:
            parse_registered_domain(bad)
        assert [p.path for p in refused.value.problems] == ["name"]
