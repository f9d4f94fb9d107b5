"""parse_score agrees with the official JSON Schema on generated documents (mostly valid, then mutated).

The oracle is ``Draft202012Validator(schema).is_valid(doc)`` plus the few rules the schema cannot express
and the parser adds on purpose (``before`` must name other containers without cycles; list-form
files/volumes need distinct targets). Generated strings avoid ``$`` (placeholders have their own tests),
newlines and non-ASCII digits (where Python's ``re`` differs from the ECMA-262 patterns the schema means;
see test_score_parse.py for those cases).
"""

from __future__ import annotations

import copy
import json
import string
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yunzhou.domain.errors import UserError
from yunzhou.domain.score import parse_score

SCORE_DATA = Path(__file__).resolve().parents[2] / "data" / "score"
SCHEMA = json.loads((SCORE_DATA / "score-v1b1.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

TEXT = st.text(alphabet=string.ascii_letters + string.digits + " -_./:=@,{}", max_size=12)
NAMES = st.sampled_from(["web", "db", "worker", "a1", "x-y", "cache", "api-2", "00", "z" * 63])
TARGETS = st.sampled_from(["/app/config.yaml", "/etc/x", "/data", "/tmp/a.b", "/", "relative/path"])
NON_EMPTY_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " -_./:", min_size=1, max_size=8)
PORTS = st.one_of(st.integers(1, 65535), st.sampled_from([80.0, 8080.0]))
CPU = st.sampled_from(["1", "250m", "0.5", "2", "1000m", "0.25"])
MEMORY = st.sampled_from(["128M", "1Gi", "1.5Gi", "0.5Mi", "512", "10Ei"])
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-1000, 1000), st.floats(allow_nan=False, allow_infinity=False), TEXT
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)

# Values a mutation may put anywhere: the boundaries of every rule in the schema, valid and invalid.
TRICKY: list[Any] = [
    *[0, 1, 80, 65535, 65536, -1, 80.0, 80.5, 1e20, True, False, None, 3.0],
    *["", "a", "ab", "web", "Web", "-ab", "ab-", "a" * 63, "a" * 64, "a--b", "a.b", "a..b", "ab.cd-ef"],
    *["TCP", "UDP", "tcp", "HTTP", "HTTPS", "https", "started", "healthy", "complete", "done"],
    *["0600", "600", "0800", "0644", "06444", "1000m", "0.5", "1.", ".5", "250m", "2m5", "1.5m"],
    *["1.5Gi", "128M", "0", "0.5Mi", "01M", "1Ki", "1k", "1KiB", "1e3", "00.5"],
    *["score.dev/v1b1", "score.dev/v1b2", "x=y", "=", "prefix.com/key", "ab/cd", "Prefix.com/key", "A_b"],
    *["Resource-One", "-bad", "UPPER", "a" * 317, "x" * 62 + "/" + "y" * 3],
    *[[], {}, ["a"], [1], {"a": 1}],
    *[{"content": "x"}, {"source": "s"}, {"binaryContent": "AA=="}, {"source": ""}],
    *[{"target": "/t", "content": "x"}, {"target": "", "content": "x"}, {"content": "x", "source": "y"}],
    *[{"source": "v"}, {"target": "/t", "source": "v"}, {"source": "v", "readOnly": "yes"}],
    *[{"ready": "started"}, {"ready": "done"}, {"port": 80}, {"port": 0}, {"type": "postgres"}],
    *[{"httpGet": {"port": 80, "path": "/"}}, {"exec": {"command": []}}, {"command": ["a"]}],
    *[{"name": "X-A", "value": "v"}, {"name": "X A", "value": "v"}, {"name": "X", "value": ""}],
    *[{"cpu": "1"}, {"memory": "0"}, {"image": "x"}, {"annotations": {"a": 1}}, {"annotations": {"ab": "c"}}],
]
SCHEMA_FIELDS = {
    "apiVersion",
    "metadata",
    "name",
    "annotations",
    "service",
    "ports",
    "containers",
    "resources",
}
ANY_TRICKY = st.one_of(st.sampled_from(TRICKY), JSON_SCALARS)
TRICKY_STRINGS = st.sampled_from([v for v in TRICKY if isinstance(v, str)])
TRICKY_NUMBERS = st.sampled_from([v for v in TRICKY if isinstance(v, int | float)])
KEYS = [
    *["apiVersion", "metadata", "service", "containers", "resources", "name", "annotations", "ports"],
    *["port", "protocol", "targetPort", "image", "command", "args", "variables", "files", "volumes"],
    *["livenessProbe", "readinessProbe", "before", "target", "mode", "source", "content"],
    *["binaryContent", "noExpand", "path", "readOnly", "limits", "requests", "cpu", "memory", "httpGet"],
    *["exec", "host", "scheme", "httpHeaders", "value", "ready", "type", "class", "id", "params"],
    *["foo", "", "Web", "ab", "web", "x=y", "/path", "prefix.com/key", "a", "A_b"],
]


def _optional(draw: st.DrawFn, key: str, strategy: st.SearchStrategy[Any], out: dict[str, Any]) -> None:
    if draw(st.booleans()):
        out[key] = draw(strategy)


@st.composite
def files(draw: st.DrawFn) -> Any:
    entries: dict[str, Any] = {}
    for target in draw(st.lists(TARGETS, max_size=3, unique=True)):
        source = draw(st.sampled_from(["content", "binaryContent", "source"]))
        entry: dict[str, Any] = {source: draw(TEXT) if source != "source" else "file.txt"}
        _optional(draw, "mode", st.sampled_from(["0644", "600", "0755"]), entry)
        _optional(draw, "noExpand", st.booleans(), entry)
        entries[target] = entry
    if draw(st.booleans()):
        return [{"target": t, **e} for t, e in entries.items()]
    return entries


@st.composite
def volumes(draw: st.DrawFn) -> Any:
    entries: dict[str, Any] = {}
    for target in draw(st.lists(TARGETS, max_size=2, unique=True)):
        entry: dict[str, Any] = {"source": draw(TEXT)}
        _optional(draw, "path", TEXT, entry)
        _optional(draw, "readOnly", st.booleans(), entry)
        entries[target] = entry
    if draw(st.booleans()):
        return [{"target": t, **e} for t, e in entries.items()]
    return entries


@st.composite
def probes(draw: st.DrawFn) -> dict[str, Any]:
    probe: dict[str, Any] = {}
    kinds = draw(st.sampled_from([("httpGet",), ("exec",), ("httpGet", "exec")]))
    if "httpGet" in kinds:
        http: dict[str, Any] = {"port": draw(PORTS), "path": draw(TEXT)}
        _optional(draw, "host", NON_EMPTY_TEXT, http)
        _optional(draw, "scheme", st.sampled_from(["HTTP", "HTTPS"]), http)
        headers = st.fixed_dictionaries(
            {"name": st.sampled_from(["X-Trace", "a_b", "Accept"]), "value": NON_EMPTY_TEXT}
        )
        _optional(draw, "httpHeaders", st.lists(headers, max_size=2), http)
        probe["httpGet"] = http
    if "exec" in kinds:
        probe["exec"] = {"command": draw(st.lists(TEXT, max_size=3))}
    return probe


@st.composite
def limits(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _optional(draw, "cpu", CPU, out)
    _optional(draw, "memory", MEMORY, out)
    return out


@st.composite
def containers(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    out: dict[str, Any] = {}
    for index, name in enumerate(names):
        c: dict[str, Any] = {"image": draw(NON_EMPTY_TEXT)}
        _optional(draw, "command", st.lists(TEXT, max_size=3), c)
        _optional(draw, "args", st.lists(TEXT, max_size=3), c)
        _optional(
            draw,
            "variables",
            st.dictionaries(st.sampled_from(["PORT", "DB_HOST", "a.b", "x y", "_"]), TEXT, max_size=3),
            c,
        )
        _optional(draw, "files", files(), c)
        _optional(draw, "volumes", volumes(), c)
        _optional(
            draw,
            "resources",
            st.fixed_dictionaries({}, optional={"limits": limits(), "requests": limits()}),
            c,
        )
        _optional(draw, "livenessProbe", probes(), c)
        _optional(draw, "readinessProbe", probes(), c)
        if index and draw(st.booleans()):  # only earlier containers: no cycles in a valid document
            ready = st.fixed_dictionaries({"ready": st.sampled_from(["started", "healthy", "complete"])})
            c["before"] = {n: draw(ready) for n in draw(st.sets(st.sampled_from(names[:index]), min_size=1))}
        out[name] = c
    return out


@st.composite
def resources(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in draw(st.lists(NAMES, max_size=3, unique=True)):
        r: dict[str, Any] = {"type": draw(st.sampled_from(["postgres", "Redis-7", "dns", "volume"]))}
        _optional(draw, "class", st.sampled_from(["default", "large", "HA-2"]), r)
        _optional(draw, "id", st.sampled_from(["shared-db", "a.b-c", "main"]), r)
        annotations = st.dictionaries(st.sampled_from(["team", "example.com/owner", "a.b"]), TEXT, max_size=2)
        _optional(
            draw, "metadata", st.fixed_dictionaries({}, optional={"annotations": annotations, "x": JSON}), r
        )
        _optional(draw, "params", st.dictionaries(TEXT, JSON, max_size=3), r)
        out[name] = r
    return out


@st.composite
def valid_docs(draw: st.DrawFn) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": draw(NAMES)}
    _optional(
        draw, "annotations", st.dictionaries(st.sampled_from(["team", "example.com/owner"]), TEXT), metadata
    )
    _optional(draw, "extra", JSON, metadata)
    doc: dict[str, Any] = {
        "apiVersion": "score.dev/v1b1",
        "metadata": metadata,
        "containers": draw(containers()),
    }
    if draw(st.booleans()):
        port = st.fixed_dictionaries(
            {"port": PORTS}, optional={"protocol": st.sampled_from(["TCP", "UDP"]), "targetPort": PORTS}
        )
        doc["service"] = draw(st.fixed_dictionaries({}, optional={"ports": st.dictionaries(NAMES, port)}))
    _optional(draw, "resources", resources(), doc)
    return doc


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    found = [(path, value)]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _nodes(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _nodes(item, (*path, index))
    return found


def _mutate(draw: st.DrawFn, doc: Any) -> Any:
    path, node = draw(st.sampled_from(_nodes(doc)))
    tricky = ANY_TRICKY
    if isinstance(node, str):
        tricky = st.one_of(TRICKY_STRINGS, ANY_TRICKY)  # mostly pattern and length boundaries
    elif isinstance(node, int | float):
        tricky = st.one_of(TRICKY_NUMBERS, ANY_TRICKY)
    ops = ["replace"]
    if isinstance(node, dict):
        ops += ["add"] + (["rename", "delete"] if node else [])
    if isinstance(node, list):
        ops += ["append"] + (["delete"] if node else [])
    op = draw(st.sampled_from(ops))
    if op == "replace":
        new: Any = copy.deepcopy(draw(tricky))
    else:
        new = copy.copy(node)
        if op == "add":
            new[draw(st.sampled_from(KEYS))] = copy.deepcopy(draw(tricky))
        elif op == "append":
            new.append(copy.deepcopy(draw(tricky)))
        elif op == "delete":
            del new[draw(st.sampled_from(list(range(len(new))) if isinstance(new, list) else list(new)))]
        else:
            old = draw(st.sampled_from(list(new)))
            new = {(draw(st.sampled_from(KEYS)) if k == old else k): v for k, v in new.items()}
    if not path:
        return new
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return doc


@st.composite
def documents(draw: st.DrawFn) -> Any:
    doc: Any = draw(valid_docs())
    for _ in range(draw(st.integers(0, 2))):
        doc = _mutate(draw, doc)
    return doc


def _semantically_ok(doc: dict[str, Any]) -> bool:
    """The rules beyond the schema, for a schema-valid document (written independently of the parser)."""
    containers = doc["containers"]
    graph = {name: list(c.get("before", {})) for name, c in containers.items()}
    if any(dep == name or dep not in containers for name, deps in graph.items() for dep in deps):
        return False
    done: set[str] = set()

    def acyclic(name: str, path: frozenset[str]) -> bool:
        if name in path:
            return False
        if name in done:
            return True
        ok = all(acyclic(dep, path | {name}) for dep in graph[name])
        done.add(name)
        return ok

    if not all(acyclic(name, frozenset()) for name in graph):
        return False
    for c in containers.values():
        for key in ("files", "volumes"):
            if isinstance(c.get(key), list):
                targets = [item.get("target") for item in c[key]]
                if None in targets or len(set(targets)) != len(targets):
                    return False
    return True


def _parses(doc: Any) -> tuple[bool, list[str]]:
    try:
        parse_score(doc)
    except UserError as exc:
        return False, [p.path for p in exc.problems]
    return True, []


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_parser_agrees_with_the_json_schema(doc: Any) -> None:
    expected = VALIDATOR.is_valid(doc) and _semantically_ok(doc)
    ok, paths = _parses(doc)
    assert ok == expected, (paths, [e.message for e in VALIDATOR.iter_errors(doc)][:5])
    if not ok:
        assert paths
        if isinstance(doc, dict):
            assert all(paths), paths


@settings(max_examples=80, deadline=None)
@given(valid_docs())
def test_generated_valid_documents_round_trip(doc: dict[str, Any]) -> None:
    assert VALIDATOR.is_valid(doc)
    workload = parse_score(doc)
    canonical = workload.to_dict()
    assert VALIDATOR.is_valid(canonical)
    assert parse_score(canonical) == workload
    assert parse_score(canonical).to_dict() == canonical
    assert json.loads(json.dumps(canonical)) == canonical


# A document using every field once; each slot below is one place a boundary value can go.
FULL: dict[str, Any] = {
    "apiVersion": "score.dev/v1b1",
    "metadata": {"name": "shop", "annotations": {"team": "a", "example.com/owner": "b"}, "x": 1},
    "service": {"ports": {"web": {"port": 80, "protocol": "TCP", "targetPort": 8080}}},
    "containers": {
        "web": {
            "image": "shop:1",
            "command": ["run"],
            "args": ["-v"],
            "variables": {"PORT": "8080"},
            "files": {"/etc/app.conf": {"mode": "0644", "content": "x", "noExpand": True}},
            "volumes": {"/data": {"source": "vol", "path": "sub", "readOnly": True}},
            "resources": {
                "limits": {"cpu": "1", "memory": "1Gi"},
                "requests": {"cpu": "250m", "memory": "128M"},
            },
            "livenessProbe": {"exec": {"command": ["true"]}},
            "readinessProbe": {
                "httpGet": {
                    "host": "h",
                    "scheme": "HTTP",
                    "path": "/ready",
                    "port": 8080,
                    "httpHeaders": [{"name": "X-A", "value": "v"}],
                }
            },
            "before": {"init": {"ready": "complete"}},
        },
        "init": {
            "image": "shop:1",
            "files": [{"target": "/a", "source": "a.txt"}],
            "volumes": [{"target": "/v", "source": "v"}],
        },
    },
    "resources": {
        "db": {
            "type": "postgres",
            "class": "large",
            "id": "shared.db",
            "metadata": {"annotations": {"k8s.io/xy": "y"}},
            "params": {"a": [1]},
        }
    },
}
WEB = ("containers", "web")
# Every place in FULL, plus fields FULL leaves out; and every mapping key in FULL (to rename).
VALUE_SLOTS: list[tuple[Any, ...]] = [path for path, _ in _nodes(FULL) if path] + [
    ("extra",),
    (*WEB, "extra"),
    (*WEB, "files", "/etc/app.conf", "source"),
    (*WEB, "files", "/etc/app.conf", "binaryContent"),
    (*WEB, "files", "/etc/app.conf", "target"),
    (*WEB, "volumes", "/data", "target"),
    (*WEB, "livenessProbe", "httpGet"),
    ("resources", "db", "extra"),
]
KEY_SLOTS: list[tuple[Any, ...]] = [path for path, _ in _nodes(FULL) if path and isinstance(path[-1], str)]
BOUNDARY_VALUES = st.one_of(
    st.sampled_from(TRICKY),
    st.text(alphabet="aZ09-_./=:@ é", max_size=6),
    st.text(alphabet="ab-", min_size=60, max_size=66),
)


def test_the_full_document_is_valid() -> None:
    assert VALIDATOR.is_valid(FULL)
    parse_score(FULL)


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    parent: Any = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value


@settings(max_examples=1200, deadline=None)
@given(slot=st.sampled_from(VALUE_SLOTS), value=BOUNDARY_VALUES)
def test_boundary_values_agree_with_the_schema(slot: tuple[Any, ...], value: Any) -> None:
    doc = copy.deepcopy(FULL)
    _set(doc, slot, copy.deepcopy(value))
    expected = VALIDATOR.is_valid(doc) and _semantically_ok(doc)
    ok, paths = _parses(doc)
    assert ok == expected, (paths, [e.message for e in VALIDATOR.iter_errors(doc)][:5])
    assert all(paths)


@settings(max_examples=500, deadline=None)
@given(
    slot=st.sampled_from(KEY_SLOTS),
    key=st.one_of(st.sampled_from(KEYS), BOUNDARY_VALUES.filter(lambda v: isinstance(v, str))),
)
def test_boundary_keys_agree_with_the_schema(slot: tuple[Any, ...], key: str) -> None:
    doc = copy.deepcopy(FULL)
    parent: Any = doc
    for part in slot[:-1]:
        parent = parent[part]
    renamed = {(key if k == slot[-1] else k): v for k, v in parent.items()}
    parent.clear()
    parent.update(renamed)
    expected = VALIDATOR.is_valid(doc) and _semantically_ok(doc)
    ok, paths = _parses(doc)
    assert ok == expected, (paths, [e.message for e in VALIDATOR.iter_errors(doc)][:5])
    assert all(paths)
