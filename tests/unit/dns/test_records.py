"""Record validation shared by every DNS provider: clear errors naming the field, canonical values."""

from __future__ import annotations

import pytest

from yunzhou.domain.errors import UserError
from yunzhou.names.dns import DnsRecord, RecordType, check_record

ZONE = "example.test"


def _problem(**overrides: object) -> tuple[str, str]:
    args: dict[str, object] = {"zone": ZONE, "name": "a.example.test", "type": "A", "values": ["10.0.0.1"]}
    args["ttl"] = 60
    args.update(overrides)
    with pytest.raises(UserError) as caught:
        check_record(**args)
    [problem] = caught.value.problems
    return problem.path, problem.message


def test_valid_records_are_canonical() -> None:
    record = check_record("Example.Test.", "A.example.test.", "a", ["10.0.0.2", "10.0.0.1", "10.0.0.2"], 60)
    assert record == DnsRecord("a.example.test", RecordType.A, 60, ("10.0.0.1", "10.0.0.2"))
    assert check_record(ZONE, ZONE, "AAAA", ["2001:DB8::0001"], 1).values == ("2001:db8::1",)
    assert check_record(ZONE, "w.example.test", "CNAME", ["Web.Example.Test."], 86400).values == (
        "web.example.test",
    )
    txt = 'v=verify; token="abc"'
    assert check_record(ZONE, "_c.example.test", "TXT", [txt], 60).values == (txt,)


@pytest.mark.parametrize(
    ("overrides", "path", "fragment"),
    [
        ({"zone": "bad_zone!"}, "zone", "must be a DNS name"),
        ({"name": "a.other.test"}, "name", "is not in zone example.test"),
        ({"name": "notexample.test"}, "name", "is not in zone example.test"),
        ({"name": "a..example.test"}, "name", "must be a DNS name"),
        ({"name": 7}, "name", "must be a DNS name"),
        ({"type": "MX"}, "type", "one of A, AAAA, CNAME, TXT"),
        ({"ttl": 0}, "ttl", "from 1 to 86400"),
        ({"ttl": 86401}, "ttl", "from 1 to 86400"),
        ({"ttl": True}, "ttl", "from 1 to 86400"),
        ({"ttl": "60"}, "ttl", "from 1 to 86400"),
        ({"values": []}, "values", "must not be empty"),
        ({"values": "10.0.0.1"}, "values", "must be a list of strings"),
        ({"values": ["10.0.0.1", "300.0.0.1"]}, "values[1]", "must be an IPv4 address"),
        ({"type": "AAAA", "values": ["10.0.0.1"]}, "values[0]", "must be an IPv6 address"),
        ({"type": "CNAME", "values": ["a.test", "b.test"]}, "values", "exactly one value"),
        ({"type": "CNAME", "values": ["not a name"]}, "values[0]", "must be a DNS name"),
        ({"type": "TXT", "values": ["x" * 256]}, "values[0]", "at most 255 printable ASCII"),
        ({"type": "TXT", "values": ["line\nbreak"]}, "values[0]", "printable ASCII"),
        ({"type": "TXT", "values": [3]}, "values[0]", "must be a string"),
    ],
)
def test_bad_input_names_the_field(overrides: dict[str, object], path: str, fragment: str) -> None:
    got_path, message = _problem(**overrides)
    assert got_path == path
    assert fragment in message
