"""Field filters on JSON log lines: parsing ``level=error``, and the store answering them from its index."""

from __future__ import annotations

import json

import pytest

from tests.unit.observe.conftest import APP, T0, MakeStore, record
from tests.unit.observe.test_records import SupervisorLine
from yunzhou.domain.errors import UserError
from yunzhou.observe import FieldFilter, LogRecord, LogStore, access_record, json_fields, parse_filters
from yunzhou.observe.logs import fieldindex


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("level=error", [FieldFilter("level", "=", "error")]),
        ("user_id=42", [FieldFilter("user_id", "=", 42)]),
        ("user_id = 42", [FieldFilter("user_id", "=", 42)]),
        ('user_id="42"', [FieldFilter("user_id", "=", "42")]),
        ("status>=500", [FieldFilter("status", ">=", 500)]),
        ("took<1.5", [FieldFilter("took", "<", 1.5)]),
        ("ok=true", [FieldFilter("ok", "=", 1)]),
        ("level!=info", [FieldFilter("level", "!=", "info")]),
        ('msg="two words"', [FieldFilter("msg", "=", "two words")]),
        ("level=error user_id=42", [FieldFilter("level", "=", "error"), FieldFilter("user_id", "=", 42)]),
        ("http.method=GET", [FieldFilter("http.method", "=", "GET")]),
        ("path=/a=b", [FieldFilter("path", "=", "/a=b")]),
    ],
)
def test_filters_are_read(text: str, expected: list[FieldFilter]) -> None:
    assert list(parse_filters([text])) == expected


@pytest.mark.parametrize("text", ["level", "=error", "le vel=x", 'msg="unterminated\\"', "a=" + "x" * 1001])
def test_a_filter_that_cannot_be_read_names_its_field(text: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_filters([text], field="query.where")
    assert [p.path for p in caught.value.problems] == ["query.where"]


LINES = [
    {"level": "error", "user_id": 42, "msg": "payment failed", "status": 502},
    {"level": "info", "user_id": 42, "msg": "payment ok", "status": 200},
    {"level": "error", "user_id": 7, "msg": "timeout", "status": 504},
    {"level": "warn", "user_id": "42", "msg": "user id as text"},
    {"level": "ERROR", "ok": True, "took": 1.25},
    {"level": "info", "ok": False, "took": 0.5, "nested": {"a": 1}},
    {"msg": "no level at all", "status": "500"},
    {"delta": -5, "level": "info"},
    {"delta": -0.5},
    {"delta": 12, "big": 12345678901234567},
]
PLAIN = ["plain text level=error user_id=42", "[1, 2, 3]"]
FILTERS = [
    "level=error",
    "level=error user_id=42",
    "user_id=42",
    'user_id="42"',
    "status>=500",
    "status<300",
    "status>=500 level=error",
    'status="500"',
    "level!=info",
    "level!=error status>=200",
    "ok=true",
    "ok=false",
    "took>1",
    "took<=0.5",
    "level>=info",
    "level<f",
    "missing=1",
    "msg=timeout",
    "delta>-1",
    "delta<0",
    "delta>=-5",
    "delta<-1",
    "delta<=12",
    "delta=-0.5",
    "big>=12345678901234567",
    "big<1e3",
]


def fill_corpus(store: LogStore) -> None:
    for fields in LINES:
        store.append(record(json.dumps(fields)))
    for line in PLAIN:
        store.append(record(line))
    assert store.flush()


@pytest.mark.parametrize("where", FILTERS)
@pytest.mark.parametrize("indexed", [True, False], ids=["index", "scan"])
def test_the_store_answers_field_filters_as_the_filters_define_them(
    make_store: MakeStore, full_text: bool, where: str, indexed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not indexed:  # every record of the app is checked, as for filters the index cannot narrow
        monkeypatch.setattr(fieldindex, "match_expression", lambda checks: None)
    store = make_store(full_text=full_text)
    fill_corpus(store)
    filters = parse_filters([where])
    expected = [
        line
        for line in [json.dumps(fields) for fields in LINES] + PLAIN
        if all(f.matches(json_fields(line) or {}) for f in filters)
    ]
    got = [item["line"] for item in store.query(APP, where=filters, limit=100)]
    assert got == expected
    assert [item["line"] for item in store.query(APP, where=filters, after_id=0, limit=100)] == expected


def test_some_expected_answers(store: LogStore) -> None:
    fill_corpus(store)

    def msgs(*where: str) -> list[object]:
        return [item["fields"].get("msg") for item in store.query(APP, where=parse_filters(where))]

    assert msgs("level=error", "user_id=42") == ["payment failed"]
    assert msgs("user_id=42") == ["payment failed", "payment ok"]  # the text "42" is not the number 42
    assert msgs('user_id="42"') == ["user id as text"]
    assert msgs("status>=500") == ["payment failed", "timeout"]
    assert len(msgs("level!=info")) == 9  # records without the key (plain lines too) count as different


def test_field_filters_combine_with_grep_time_and_paging(make_store: MakeStore, full_text: bool) -> None:
    store = make_store(full_text=full_text)
    for i in range(300):
        level = "error" if i % 3 == 0 else "info"
        store.append(record(json.dumps({"level": level, "n": i, "msg": f"request {i}"}), time=1000.0 + i))
    assert store.flush()
    errors = parse_filters(["level=error"])
    assert len(store.query(APP, where=errors, limit=1000)) == 100
    newest = store.query(APP, where=errors, limit=2)
    assert [item["fields"]["n"] for item in newest] == [294, 297]
    page = store.page(APP, where=errors, after_id=0, limit=3)
    assert [item["fields"]["n"] for item in page.items] == [0, 3, 6]
    after = store.query(APP, where=errors, after_id=page.next_after_id, limit=1)
    assert after[0]["fields"]["n"] == 9
    both = store.query(APP, where=parse_filters(["level=error n>=100 n<110"]), grep="request 10")
    assert [item["fields"]["n"] for item in both] == [102, 105, 108]
    timed = store.query(APP, where=errors, since=1000.0 + 150, until=1000.0 + 160)
    assert [item["fields"]["n"] for item in timed] == [150, 153, 156, 159]


def test_fields_given_with_a_plain_line_and_access_records_are_filterable(store: LogStore) -> None:
    store.append(record("charged", user="alice", amount=12))
    store.append(record("refunded", user="bob", amount=3))
    store.append(record('{"level": "info"}'))
    assert store.flush()
    assert [i["line"] for i in store.query(APP, where=parse_filters(["user=alice"]))] == ["charged"]
    assert [i["line"] for i in store.query(APP, where=parse_filters(["amount<10"]))] == ["refunded"]


def test_long_text_values_are_not_indexed_but_still_match(store: LogStore) -> None:
    long = "x" * (fieldindex.MAX_INDEXED_TEXT + 10)
    store.append(record(json.dumps({"blob": long, "level": "info"})))
    assert store.flush()
    assert len(store.query(APP, where=parse_filters([f"blob={long}"]))) == 1
    assert len(store.query(APP, where=parse_filters([f"blob={long} level=info"]))) == 1


def test_captured_json_lines_and_access_records_are_indexed_from_their_parsed_fields(store: LogStore) -> None:
    line = '{"level": "error", "user_id": 42, "took": 1.5}'
    captured = SupervisorLine(T0, APP, "orders-1", 1, "stdout", line, json.loads(line))
    store.append(LogRecord.from_captured(captured))
    access = json.dumps(
        {"app": APP, "time": "2023-11-14T22:13:20Z", "status": 503, "path": "/x", "method": "GET"}
    )
    record = access_record(access, now=T0)
    assert record is not None
    store.append(record)
    assert store.flush()
    [json_line] = store.query(APP, where=parse_filters(["level=error user_id=42 took>1"]))
    assert json_line["line"] == line
    assert json_line["fields"] == {"level": "error", "user_id": 42, "took": 1.5}
    [served] = store.query(APP, where=parse_filters(["status>=500 method=GET"]))
    assert served["stream"] == "access"
    assert served["fields"]["path"] == "/x"
