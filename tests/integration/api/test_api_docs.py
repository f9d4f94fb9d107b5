"""docs/api.md says what the API publishes: its endpoint table and its object shapes, against /openapi.json.

- every row of the endpoint table (``| GET, PUT | `/whoami/preferences` | … |``) is an operation the
  application serves, with that method;
- every shape (``- Rollout `{"id","app",…}` ``) lists exactly the top-level fields of the schema of that
  name (``"app"?`` marks a field that is left out when empty).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from yunzhou.api.app import create_app
from yunzhou.services import ControlPlane
from yunzhou.store.db import Database

DOC = (Path(__file__).resolve().parents[3] / "docs" / "api.md").read_text()
ROW = re.compile(r"^\| (?P<methods>[A-Z]+(?:, [A-Z]+)*) \| `(?P<path>[^`]+)` \|", re.MULTILINE)
SHAPE = re.compile(r"^- (?P<name>[A-Z]\w+) `(?P<body>\{.*?\})`", re.MULTILINE | re.DOTALL)
APP_PATH = "/projects/{p}/environments/{e}/apps/{a}"
# the doc's name → the schema's, where they differ
SCHEMA_NAMES = {"Cluster": "ClusterInfo", "Instance": "InstanceReport"}
# fields of a schema a shape leaves to the endpoint table (SecretMeta's are only in the PUT answer)
ANSWER_ONLY = {"SecretMeta": {"changed", "releases"}}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return create_app(ControlPlane.create(Database("sqlite+pysqlite://"), Path())).openapi()


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def top_level_fields(body: str) -> set[str]:
    """The keys of a shape like ``{"a","b":{"c"},"d"?:[…]}``: quoted names at depth 1 after ``{`` or ``,``."""
    fields: set[str] = set()
    depth, previous = 0, ""
    for token in re.finditer(r'"[^"]*"|[{}\[\],:]|[^\s"{}\[\],:]+', body):
        text = token.group()
        if text in "{[":
            depth += 1
        elif text in "}]":
            depth -= 1
        elif depth == 1 and text.startswith('"') and previous in {"{", ","}:
            fields.add(text.strip('"'))
        if not text.isspace():
            previous = text
    return fields


def test_top_level_fields_reads_nested_shapes() -> None:
    assert top_level_fields('{"a","b":{"c","d"},"e"?:[{"f"}],"g":"x|y"}') == {"a", "b", "e", "g"}


def test_every_endpoint_row_is_served(openapi: dict[str, Any]) -> None:
    served = {(m.upper(), _normalise(p)) for p, item in openapi["paths"].items() for m in item}
    rows = list(ROW.finditer(DOC))
    assert len(rows) > 40
    missing = [
        f"{method} {row['path']}"
        for row in rows
        for method in row["methods"].split(", ")
        if (method, _normalise("/api/v1" + row["path"].replace("…/apps/{a}", APP_PATH))) not in served
    ]
    assert not missing, f"docs/api.md lists operations the API does not serve: {missing}"


def test_every_shape_has_the_schemas_fields(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    shapes = {m["name"]: top_level_fields(m["body"]) for m in SHAPE.finditer(DOC)}
    assert {"App", "Release", "Rollout", "Token", "AuditEvent", "Deployment"} <= set(shapes)
    wrong = {}
    for name, documented in shapes.items():
        schema = schemas[SCHEMA_NAMES.get(name, name)]
        published = set(schema["properties"]) - ANSWER_ONLY.get(name, set())
        if documented != published:
            wrong[name] = {"not in the doc": published - documented, "not in the API": documented - published}
    assert not wrong, f"docs/api.md shapes differ from /openapi.json: {wrong}"
