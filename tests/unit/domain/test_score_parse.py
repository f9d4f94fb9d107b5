"""parse_score / load_score: the official samples, normalisation, and each rule with its exact path."""

from __future__ import annotations

import copy
import json
import pickle
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from yunzhou.domain.errors import UserError
from yunzhou.domain.score import (
    Container,
    ContainerDependency,
    File,
    HttpHeader,
    HttpProbe,
    Metadata,
    Probe,
    Resource,
    ResourceLimits,
    Volume,
    Workload,
    load_score,
    parse_cpu_millicores,
    parse_memory_bytes,
    parse_score,
)

SCORE_DATA = Path(__file__).resolve().parents[2] / "data" / "score"
VALIDATOR = jsonschema.Draft202012Validator(json.loads((SCORE_DATA / "score-v1b1.json").read_text()))


def score(**container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "shop"},
        "containers": {"web": {"image": "shop:1", **container}},
    }


def problems(doc: object) -> list[tuple[str, str]]:
    with pytest.raises(UserError) as caught:
        parse_score(doc)
    assert caught.value.message == "Score file is invalid"
    return [(p.path, p.message) for p in caught.value.problems]


# -- the official samples ---------------------------------------------------------------------------


def test_the_full_sample_parses_into_typed_objects() -> None:
    w = load_score((SCORE_DATA / "score-full.yaml").read_text())
    assert w.name == "example-workload-name123"
    assert w.metadata.annotations == {"prefix.com/Another-Key_Annotation.2": "something else"}
    assert w.metadata.extra == {"extra-key": "extra-value"}
    assert w.service is not None
    assert w.service.ports["port-one"].target_port == 10000
    assert w.service.ports["port-two2"].effective_target_port == 8000
    c = w.containers["container-one1"]
    assert c.command == ("/bin/sh", "-c")
    assert c.files["/my/file"] == File(mode="0600", source="file.txt")
    assert c.files["/my/other/binaryfile"].binary_content == "ADBgwpA="
    assert c.volumes["/mnt/something"] == Volume(source="volume-name", path="/sub/path", read_only=False)
    assert c.resources.requests == ResourceLimits(cpu="1000m", memory="10Gi")
    assert c.resources.limits is not None
    assert (c.resources.limits.millicores, c.resources.limits.memory_bytes) == (240, 128_000_000)
    assert c.liveness_probe is not None
    assert c.liveness_probe.exec is not None
    assert c.readiness_probe == Probe(
        http_get=HttpProbe(
            host="127.0.0.1",
            port=80,
            scheme="HTTP",
            path="/readyz",
            headers=(HttpHeader(name="SOME_HEADER", value="some-value-here"),),
        )
    )
    assert w.containers["container-two2"] == Container(image=".")
    one = w.resources["resource-one1"]
    assert (one.type, one.class_, one.id) == ("Resource-One", "default", None)
    assert one.annotations["Default-Annotation"] == "this is my annotation"
    assert one.params == {"extra": {"data": "here"}}
    assert w.resources["resource-three"].id == "shared-type-three"


def test_the_deprecated_list_form_is_normalised_to_the_map_form() -> None:
    w = load_score((SCORE_DATA / "score-deprecated-files-and-volumes.yaml").read_text())
    assert w.to_dict()["containers"]["main"] == {
        "image": "example-image:latest",
        "files": {"/mnt/some-path": {"content": "my content here"}},
        "volumes": {"/mnt/vol": {"source": "some-volume"}},
    }


@pytest.mark.parametrize("sample", ["score-full.yaml", "score-deprecated-files-and-volumes.yaml"])
def test_samples_round_trip_through_the_canonical_document(sample: str) -> None:
    w = load_score((SCORE_DATA / sample).read_text())
    canonical = w.to_dict()
    assert VALIDATOR.is_valid(canonical)
    assert parse_score(canonical) == w
    assert parse_score(json.loads(json.dumps(canonical))).to_dict() == canonical


def test_to_dict_writes_only_what_was_set() -> None:
    doc = score(command=[], variables={})
    doc["service"] = {}
    assert parse_score(doc).to_dict() == {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "shop"},
        "service": {},
        "containers": {"web": {"image": "shop:1", "command": []}},
    }


# -- one rule at a time -----------------------------------------------------------------------------


def _with(path: str, value: Any, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = copy.deepcopy(doc or score())
    *parents, last = path.split("|")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


_DELETE = object()
W = "containers|web|"
PROBE = {"httpGet": {"port": 80, "path": "/"}}

INVALID: list[tuple[str, Any, str, str]] = [
    # (where to put the value, the value, the problem path, a part of the message)
    ("apiVersion", _DELETE, "apiVersion", "required"),
    ("apiVersion", "score.dev/v1", "apiVersion", "must be 'score.dev/v1b1'"),
    ("foo", 1, "foo", "unknown field 'foo'; allowed: apiVersion, metadata, service, containers, resources"),
    ("metadata|name", _DELETE, "metadata.name", "required"),
    ("metadata|name", "Shop", "metadata.name", "must be a DNS label: 2-63 characters"),
    ("metadata|name", "s", "metadata.name", "must be a DNS label"),
    ("metadata|name", "a" * 64, "metadata.name", "must be a DNS label"),
    ("metadata|name", "-shop", "metadata.name", "must be a DNS label"),
    (
        "metadata|annotations",
        {"bad key": "x"},
        'metadata.annotations["bad key"]',
        "must be an annotation key",
    ),
    ("metadata|annotations", {"a.b/c": "x"}, 'metadata.annotations["a.b/c"]', "must be an annotation key"),
    ("metadata|annotations", {"team": 1}, "metadata.annotations.team", "must be a string (got integer)"),
    ("metadata|annotations", [], "metadata.annotations", "must be a mapping (got list)"),
    ("metadata|x", {1, 2}, "metadata.x", "must be JSON data"),
    ("metadata|x", float("nan"), "metadata.x", "must be a finite number"),
    ("containers", {}, "containers", "must declare at least one container"),
    ("containers", [], "containers", "must be a mapping (got list)"),
    ("containers|Web", {"image": "x"}, "containers.Web", "container name must be a DNS label"),
    (W + "image", _DELETE, "containers.web.image", "required"),
    (W + "image", "", "containers.web.image", "must not be empty"),
    (W + "foo", 1, "containers.web.foo", "unknown field 'foo'; allowed: image, command, args, variables"),
    (W + "command", ["a", "b", 3], "containers.web.command.2", "must be a string (got integer)"),
    (W + "args", "run", "containers.web.args", "must be a list of strings"),
    (W + "variables", {"A=B": "x"}, 'containers.web.variables["A=B"]', "must not contain '='"),
    (W + "variables", {"": "x"}, 'containers.web.variables[""]', "must not be empty"),
    (W + "variables", {"PORT": 8080}, "containers.web.variables.PORT", "must be a string (got integer)"),
    (W + "files", "x", "containers.web.files", "must be a mapping of target path to entry, or a list"),
    (
        W + "files",
        {"/a": {}},
        'containers.web.files["/a"]',
        "needs exactly one of content, binaryContent or source",
    ),
    (
        W + "files",
        {"/a": {"content": "", "source": "s"}},
        'containers.web.files["/a"]',
        "(got content and source)",
    ),
    (
        W + "files",
        {"/a": {"target": "/a", "content": ""}},
        'containers.web.files["/a"].target',
        "not allowed",
    ),
    (W + "files", {"/a": {"content": "", "x": 1}}, 'containers.web.files["/a"].x', "unknown field 'x'"),
    (
        W + "files",
        {"/a": {"content": "", "mode": "0800"}},
        'containers.web.files["/a"].mode',
        "octal file mode",
    ),
    (W + "files", {"/a": {"content": "", "mode": 644}}, 'containers.web.files["/a"].mode', "quote it"),
    (W + "files", {"/a": {"source": ""}}, 'containers.web.files["/a"].source', "must not be empty"),
    (
        W + "files",
        {"/a": {"content": "", "noExpand": "yes"}},
        'containers.web.files["/a"].noExpand',
        "true or false",
    ),
    (W + "files", [{"content": "x"}], "containers.web.files.0.target", "required in the list form"),
    (W + "files", [{"target": "", "content": "x"}], "containers.web.files.0.target", "must not be empty"),
    (
        W + "files",
        [{"target": "/a", "content": ""}] * 2,
        "containers.web.files.1.target",
        "already mounted by",
    ),
    (W + "files", ["x"], "containers.web.files.0", "must be a mapping (got string)"),
    (W + "volumes", {"/d": {}}, 'containers.web.volumes["/d"].source', "required"),
    (
        W + "volumes",
        {"/d": {"source": "v", "readOnly": 1}},
        'containers.web.volumes["/d"].readOnly',
        "true or",
    ),
    (W + "volumes", [{"source": "v"}], "containers.web.volumes.0.target", "required in the list form"),
    (
        W + "resources",
        {"limits": {"cpu": "1.5m"}},
        "containers.web.resources.limits.cpu",
        "must be a CPU amount",
    ),
    (W + "resources", {"limits": {"cpu": 1}}, "containers.web.resources.limits.cpu", "quote it"),
    (
        W + "resources",
        {"requests": {"memory": "0"}},
        "containers.web.resources.requests.memory",
        "memory amount",
    ),
    (
        W + "resources",
        {"requests": {"memory": "1KB"}},
        "containers.web.resources.requests.memory",
        "memory amount",
    ),
    (
        W + "resources",
        {"limits": {"gpu": "1"}},
        "containers.web.resources.limits.gpu",
        "allowed: cpu, memory",
    ),
    (W + "resources", {"cpu": "1"}, "containers.web.resources.cpu", "allowed: limits, requests"),
    (W + "readinessProbe", {}, "containers.web.readinessProbe", "needs httpGet or exec (or both)"),
    (
        W + "livenessProbe",
        {"httpGet": {"path": "/"}},
        "containers.web.livenessProbe.httpGet.port",
        "required",
    ),
    (
        W + "readinessProbe",
        {"httpGet": {"port": 80}},
        "containers.web.readinessProbe.httpGet.path",
        "required",
    ),
    (
        W + "readinessProbe|httpGet",
        {"port": 0, "path": "/"},
        "containers.web.readinessProbe.httpGet.port",
        "1-65535",
    ),
    (
        W + "readinessProbe|httpGet",
        {"port": "80", "path": "/"},
        "containers.web.readinessProbe.httpGet.port",
        "1-65535",
    ),
    (
        W + "readinessProbe|httpGet",
        {"port": True, "path": "/"},
        "containers.web.readinessProbe.httpGet.port",
        "integer",
    ),
    (
        W + "readinessProbe|httpGet",
        {"port": 8.5, "path": "/"},
        "containers.web.readinessProbe.httpGet.port",
        "integer",
    ),
    (
        W + "readinessProbe",
        {"httpGet": {"port": 1, "path": "/", "scheme": "http"}},
        "containers.web.readinessProbe.httpGet.scheme",
        "one of: HTTP, HTTPS",
    ),
    (
        W + "readinessProbe",
        {"httpGet": {"port": 1, "path": "/", "host": ""}},
        "containers.web.readinessProbe.httpGet.host",
        "must not be empty",
    ),
    (
        W + "readinessProbe",
        {"httpGet": {"port": 1, "path": "/", "httpHeaders": [{"name": "X A", "value": "v"}]}},
        "containers.web.readinessProbe.httpGet.httpHeaders.0.name",
        "HTTP header name",
    ),
    (
        W + "readinessProbe",
        {"httpGet": {"port": 1, "path": "/", "httpHeaders": [{"name": "X", "value": ""}]}},
        "containers.web.readinessProbe.httpGet.httpHeaders.0.value",
        "must not be empty",
    ),
    (W + "readinessProbe", {"exec": {}}, "containers.web.readinessProbe.exec.command", "required"),
    (
        W + "readinessProbe",
        {"exec": {"command": "true"}},
        "containers.web.readinessProbe.exec.command",
        "list of strings",
    ),
    (W + "before", {"db": {"ready": "started"}}, "containers.web.before.db", "no container named 'db'"),
    (W + "before", {"web": {"ready": "started"}}, "containers.web.before.web", "cannot wait for itself"),
    (
        W + "before",
        {"x": {"ready": "up"}},
        "containers.web.before.x.ready",
        "one of: started, healthy, complete",
    ),
    (W + "before", {"x": {}}, "containers.web.before.x.ready", "required"),
    (
        W + "before",
        {"X": {"ready": "started"}},
        "containers.web.before.X",
        "container name must be a DNS label",
    ),
    ("service", {"ports": {"web": {}}}, "service.ports.web.port", "required"),
    ("service", {"ports": {"web": {"port": 65536}}}, "service.ports.web.port", "must be an integer 1-65535"),
    ("service", {"ports": {"web": {"port": 80, "targetPort": 0}}}, "service.ports.web.targetPort", "1-65535"),
    (
        "service",
        {"ports": {"web": {"port": 80, "protocol": "tcp"}}},
        "service.ports.web.protocol",
        "one of: TCP, UDP",
    ),
    ("service", {"ports": {"w": {"port": 80}}}, "service.ports.w", "port name must be a DNS label"),
    ("service", {"port": 80}, "service.port", "unknown field 'port'; allowed: ports"),
    ("resources", {"db": {}}, "resources.db.type", "required"),
    ("resources", {"db": {"type": "p"}}, "resources.db.type", "must be 2-63 characters"),
    ("resources", {"db": {"type": "pg_16"}}, "resources.db.type", "must be 2-63 characters"),
    ("resources", {"db": {"type": "pg", "class": "-x"}}, "resources.db.class", "must be 2-63 characters"),
    ("resources", {"db": {"type": "pg", "id": "Main"}}, "resources.db.id", "labels of a-z"),
    ("resources", {"db": {"type": "pg", "id": "a..b"}}, "resources.db.id", "labels of a-z"),
    ("resources", {"db": {"type": "pg", "id": "a"}}, "resources.db.id", "2-63 characters"),
    ("resources", {"db": {"type": "pg", "params": []}}, "resources.db.params", "must be a mapping"),
    (
        "resources",
        {"db": {"type": "pg", "metadata": {"annotations": {"x": "y"}}}},
        "resources.db.metadata.annotations.x",
        "annotation key",
    ),
    ("resources", {"DB": {"type": "pg"}}, "resources.DB", "resource name must be a DNS label"),
]


@pytest.mark.parametrize(("where", "value", "path", "message"), INVALID)
def test_each_rule_reports_its_exact_path(where: str, value: Any, path: str, message: str) -> None:
    doc = _with(where, value)
    found = problems(doc)
    assert any(p == path and message in m for p, m in found), found
    if not isinstance(value, set) and value == value:  # the schema judges JSON data only
        assert not VALIDATOR.is_valid(doc) or path.startswith("containers.web.before") or ".target" in path


def test_the_whole_document_must_be_a_mapping() -> None:
    assert problems(["containers"]) == [("", "must be a mapping (got list)")]


def test_all_problems_are_reported_in_document_order() -> None:
    doc = score(image="", command=[1], readinessProbe={})
    doc["metadata"]["name"] = "X"
    doc["service"] = {"ports": {"web": {"port": 0}}}
    assert [p for p, _ in problems(doc)] == [
        "metadata.name",
        "service.ports.web.port",
        "containers.web.image",
        "containers.web.command.0",
        "containers.web.readinessProbe",
    ]


def test_a_before_cycle_is_reported_once() -> None:
    doc = score(before={"init": {"ready": "started"}})
    doc["containers"]["init"] = {"image": "x", "before": {"web": {"ready": "healthy"}}}
    assert problems(doc) == [("containers.web.before", "containers wait for each other: web → init → web")]
    assert VALIDATOR.is_valid(doc)  # a rule the schema cannot express


def test_non_string_keys_are_reported_at_their_mapping() -> None:
    assert problems(score(variables={1: "x"})) == [
        ("containers.web.variables", "keys must be strings (got integer 1; quote it)")
    ]


# -- what jsonschema does, and where Yunzhou follows the specification instead -------------------------


def test_integral_floats_are_integers_as_in_jsonschema() -> None:
    doc = score(readinessProbe={"httpGet": {"port": 8080.0, "path": "/"}})
    assert VALIDATOR.is_valid(doc)
    probe = parse_score(doc).containers["web"].readiness_probe
    assert probe is not None
    assert probe.http_get is not None
    assert probe.http_get.port == 8080
    assert type(probe.http_get.port) is int


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("metadata|name", "shop\n"),  # Python's `$` matches before a final newline; ECMA-262's does not
        ("apiVersion", "score.dev/v1b1\n"),
        (W + "resources", {"limits": {"cpu": "١"}}),  # Python's `\d` is any Unicode digit; ECMA-262's is 0-9
        (W + "resources", {"limits": {"memory": "1٠M"}}),
    ],
)
def test_patterns_mean_what_ecma_262_says(where: str, value: Any) -> None:
    doc = _with(where, value)
    assert VALIDATOR.is_valid(doc)  # Python's jsonschema uses `re.search`; the schema means ECMA-262
    assert problems(doc)


# -- load_score -------------------------------------------------------------------------------------

HEADER = "apiVersion: score.dev/v1b1\nmetadata: {name: shop}\ncontainers:\n  web:\n    image: shop:1\n"


def load_problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(UserError) as caught:
        load_score(text)
    return [(p.path, p.message) for p in caught.value.problems]


def test_yaml_syntax_errors_name_line_and_column() -> None:
    with pytest.raises(UserError) as caught:
        load_score(HEADER + "    command: [a, b\n")
    assert caught.value.message == "Score file cannot be read"
    assert load_problems(HEADER + "    command: [a, b\n") == [
        ("", "line 7, column 1: expected ',' or ']', but got '<stream end>'")
    ]


def test_yaml_merge_keys_work_and_may_be_overridden() -> None:
    text = HEADER + "    variables: {A: a}\n  worker:\n    <<: *web\n    image: worker:1\n"
    w = load_score(text.replace("  web:\n", "  web: &web\n"))
    assert w.containers["worker"] == Container(image="worker:1", variables={"A": "a"})


def test_duplicate_keys_are_errors() -> None:
    found = load_problems(HEADER + "  web:\n    image: other\n")
    assert found == [("", "line 6, column 3: duplicate key 'web'")]


@pytest.mark.parametrize(("text", "shown"), [("", "empty"), ("- a\n", "a list"), ("3", "a int")])
def test_the_top_level_must_be_a_mapping(text: str, shown: str) -> None:
    (only,) = load_problems(text)
    assert only == (
        "",
        f"the top level must be a mapping with apiVersion, metadata and containers (got {shown})",
    )


def test_yaml_is_read_with_the_yaml_1_2_core_schema() -> None:
    text = HEADER + "    variables: {DEBUG: on, TIME: 1:30, DAY: 2024-01-01, ANSWER: yes}\n"
    assert load_score(text).containers["web"].variables == {
        "DEBUG": "on",
        "TIME": "1:30",
        "DAY": "2024-01-01",
        "ANSWER": "yes",
    }
    found = load_problems(HEADER + "    files: {/a: {content: x, mode: 0644}}\n")
    assert found == [
        ('containers.web.files["/a"].mode', "must be a string (got integer; quote it): " + _MODE)
    ]


_MODE = 'must be an octal file mode string like "0644" or "600"'


def test_json_text_is_accepted_and_checked_strictly() -> None:
    doc = score()
    assert load_score(json.dumps(doc)) == parse_score(doc)
    assert (
        load_score("{apiVersion: score.dev/v1b1, metadata: {name: ab}, containers: {c1: {image: x}}}").name
        == "ab"
    )
    assert load_problems('{"a": 1, "a": 2}') == [("", "duplicate key 'a'")]
    assert load_problems('{"a": NaN}') == [("", "NaN is not JSON")]


def test_alias_bombs_and_recursive_aliases_are_rejected() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    found = load_problems("\n".join(lines) + "\n")
    assert found == [("", "the document has more than 100000 values (after expanding aliases)")]
    assert load_problems("a: &a [*a]\n") == [("", "YAML aliases must not make the document contain itself")]


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    assert load_problems("[" * 600 + "]" * 600) == [("", "the document is nested too deeply")]
    deep: Any = "x"
    for _ in range(100):
        deep = [deep]
    (only,) = problems(_with("metadata|x", deep))
    assert only[1] == "is nested more than 64 levels deep"


# -- the model --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu", "millicores"),
    [("1", 1000), ("250m", 250), ("0.5", 500), ("0.0001", 1), ("1000m", 1000), ("0", 0)],
)
def test_cpu_millicores(cpu: str, millicores: int) -> None:
    assert parse_cpu_millicores(cpu) == millicores


@pytest.mark.parametrize(
    ("memory", "size"),
    [
        ("128M", 128_000_000),
        ("1.5Gi", 1_610_612_736),
        ("1Ki", 1024),
        ("512", 512),
        ("0.5", 1),
        ("1E", 10**18),
    ],
)
def test_memory_bytes(memory: str, size: int) -> None:
    assert parse_memory_bytes(memory) == size


def test_bad_amounts_raise_user_errors() -> None:
    with pytest.raises(UserError, match=r"limits\.cpu: must be a CPU amount"):
        parse_cpu_millicores("1.5m", "limits.cpu")
    with pytest.raises(UserError, match="memory: must be a memory amount"):
        parse_memory_bytes("0")


def test_workloads_are_frozen_hashable_and_picklable() -> None:
    w = load_score((SCORE_DATA / "score-full.yaml").read_text())
    with pytest.raises(FrozenInstanceError):
        w.metadata.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        w.containers["x"] = Container(image="x")  # type: ignore[index]
    assert hash(w) == hash(parse_score(w.to_dict()))
    assert pickle.loads(pickle.dumps(w)) == w  # noqa: S301 - our own bytes
    assert copy.deepcopy(w) == w


def test_hand_built_workloads_equal_parsed_ones() -> None:
    before = {"db": ContainerDependency(ready="healthy")}
    built = Workload(
        metadata=Metadata(name="shop", extra={"owner": {"emails": ["a@example.com"]}}),
        containers={
            "web": Container(image="shop:1", command=["run"], before=before),
            "db": Container(image="pg"),
        },
        resources={"pg": Resource(type="postgres", params={"extensions": ["postgis"]})},
    )
    doc = score(command=["run"], before={"db": {"ready": "healthy"}})
    doc["metadata"]["owner"] = {"emails": ["a@example.com"]}
    doc["containers"]["db"] = {"image": "pg"}
    doc["resources"] = {"pg": {"type": "postgres", "params": {"extensions": ["postgis"]}}}
    assert parse_score(doc) == built
    assert hash(parse_score(doc)) == hash(built)
    assert built.to_dict() == doc
