"""Placeholders: expansion, escapes, the checks at parse time and the errors of substitute."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yunzhou.domain.errors import UserError
from yunzhou.domain.score import escape, parse_score, referenced_resources, substitute
from yunzhou.domain.score.placeholders import references_in

OUTPUTS: dict[str, dict[str, object]] = {
    "db": {"host": "db.internal", "port": 5432, "tls": {"mode": "verify"}, "flags": [1, "a"]},
    "cache": {"url": "redis://cache:6379"},
}


def score(container: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "score.dev/v1b1",
        "metadata": {
            "name": "shop",
            "annotations": {"example.com/team": "payments", "tier": "gold"},
            "owner": {"email": "ops@example.com"},
        },
        "containers": {"web": {"image": "shop:1", **(container or {})}},
        "resources": {"db": {"type": "postgres"}, "cache": {"type": "redis"}},
    }
    doc.update(top)
    return doc


def expand(text: str, outputs: dict[str, dict[str, object]] | None = None) -> str:
    workload = parse_score(score({"variables": {"X": text}}))
    return substitute(workload, OUTPUTS if outputs is None else outputs).containers["web"].variables["X"]


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("${metadata.name}", "shop"),
        ("app-${metadata.name}-1", "app-shop-1"),
        ("${metadata.annotations.tier}", "gold"),
        ("${metadata.annotations.example\\.com/team}", "payments"),
        ("${metadata.owner.email}", "ops@example.com"),
        ("${metadata.owner}", '{"email":"ops@example.com"}'),
        ("${resources.db.host}:${resources.db.port}", "db.internal:5432"),
        ("${resources.db.tls.mode}", "verify"),
        ("${resources.db.tls}", '{"mode":"verify"}'),
        ("${resources.db.flags}", '[1,"a"]'),
        ("$${metadata.name}", "${metadata.name}"),
        ("$${HOME} and ${metadata.name}", "${HOME} and shop"),
        ("price: $$5", "price: $5"),
        ("$5 and $HOME", "$5 and $HOME"),
        ("$$$${metadata.name}", "$${metadata.name}"),
        ("$$$${x", "$${x"),
        ("${unclosed", "${unclosed"),
        ("trailing $", "trailing $"),
        ("", ""),
    ],
)
def test_expansion(text: str, expanded: str) -> None:
    assert expand(text) == expanded


def test_substitute_expands_variables_command_args_and_file_content() -> None:
    doc = score(
        {
            "command": ["run", "--db=${resources.db.host}"],
            "args": ["--name", "${metadata.name}"],
            "files": {
                "/etc/app.conf": {"content": "url=${resources.cache.url}\n"},
                "/etc/raw.sh": {"content": "echo ${HOME}", "noExpand": True},
                "/etc/bin": {"binaryContent": "JHt4fQ=="},
                "/etc/src": {"source": "${notexpanded}.txt"},
            },
        }
    )
    web = substitute(parse_score(doc), OUTPUTS).containers["web"]
    assert web.command == ("run", "--db=db.internal")
    assert web.args == ("--name", "shop")
    assert web.files["/etc/app.conf"].content == "url=redis://cache:6379\n"
    assert web.files["/etc/raw.sh"].content == "echo ${HOME}"
    assert web.files["/etc/bin"].binary_content == "JHt4fQ=="


def test_substitute_returns_a_new_workload_and_keeps_the_rest() -> None:
    workload = parse_score(score({"variables": {"A": "${metadata.name}"}}))
    result = substitute(workload, {})
    assert workload.containers["web"].variables["A"] == "${metadata.name}"
    assert result.containers["web"].variables["A"] == "shop"
    assert result.containers["web"].command is None
    assert (result.metadata, result.resources) == (workload.metadata, workload.resources)


# -- checks at parse time ---------------------------------------------------------------------------


def parse_problems(doc: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(UserError) as caught:
        parse_score(doc)
    return [(p.path, p.message) for p in caught.value.problems]


def test_an_undeclared_resource_is_reported_where_it_is_used() -> None:
    assert parse_problems(score({"variables": {"DB_HOST": "${resources.pg.host}"}})) == [
        (
            "containers.web.variables.DB_HOST",
            "unknown placeholder ${resources.pg.host}: resource 'pg' is not declared in resources",
        )
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("${HOME/x}", "placeholders start with 'metadata.' or 'resources.'; write $${ for a literal ${"),
        ("${}", "placeholders start with 'metadata.' or 'resources.'; write $${ for a literal ${"),
        ("${metadata}", "name a metadata key, e.g. ${metadata.name}"),
        ("${metadata.nope}", "metadata has no key 'nope'"),
        ("${metadata.annotations.nope}", "metadata.annotations has no key 'nope'"),
        ("${metadata.name.first}", "metadata.name is not a mapping, so it has no key 'first'"),
        ("${resources}", "name a resource and an output, e.g. ${resources.db.host}"),
    ],
)
def test_placeholders_that_can_never_resolve_are_reported_at_parse_time(text: str, reason: str) -> None:
    found = parse_problems(score({"command": ["a", f"x {text} y"]}))
    assert found == [("containers.web.command.1", f"unknown placeholder {text}: {reason}")]


def test_every_place_with_placeholders_is_checked() -> None:
    bad = "${resources.nope.x}"
    doc = score(
        {
            "args": [bad],
            "files": [{"target": "/a", "content": bad}, {"target": "/b", "content": bad, "noExpand": True}],
            "volumes": {"/data": {"source": bad}},
        },
        resources={"db": {"type": "postgres", "params": {"dsn": [bad]}}},
    )
    assert [path for path, _ in parse_problems(doc)] == [
        "containers.web.args.0",
        "containers.web.files.0.content",
        'containers.web.volumes["/data"].source',
        "resources.db.params.dsn.0",
    ]


def test_params_may_use_other_resources_but_not_themselves_or_a_cycle() -> None:
    ok = score(
        resources={"db": {"type": "pg"}, "app": {"type": "xx", "params": {"h": "${resources.db.host}"}}}
    )
    assert referenced_resources(parse_score(ok)) == {"db"}
    own = score(resources={"db": {"type": "pg", "params": {"h": "${resources.db.host}"}}})
    assert parse_problems(own) == [
        ("resources.db.params.h", "resource 'db' cannot use its own outputs in its params")
    ]
    cycle = score(
        resources={
            "aa": {"type": "xx", "params": {"v": "${resources.bb.v}"}},
            "bb": {"type": "xx", "params": {"v": "${resources.aa.v}"}},
        }
    )
    assert parse_problems(cycle) == [
        ("resources.aa.params", "resources use each other's outputs in a cycle: aa → bb → aa")
    ]


def test_referenced_resources() -> None:
    doc = score(
        {
            "variables": {"A": "${resources.db.host}", "B": "$${resources.cache.url}"},
            "files": {"/x": {"content": "${resources.cache.url}", "noExpand": True}},
        }
    )
    assert referenced_resources(parse_score(doc)) == {"db"}


# -- errors of substitute ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "outputs", "reason"),
    [
        ("${resources.db.user}", OUTPUTS, "resource 'db' has no key 'user'"),
        ("${resources.db.host.x}", OUTPUTS, "resource 'db'.host is not a mapping, so it has no key 'x'"),
        ("${resources.db}", OUTPUTS, "name an output of resource 'db', e.g. ${resources.db.host}"),
        ("${resources.db.host}", {}, "resource 'db' has no outputs yet"),
    ],
)
def test_unresolvable_outputs_name_the_field_and_the_placeholder(
    text: str, outputs: dict[str, dict[str, object]], reason: str
) -> None:
    workload = parse_score(score({"variables": {"DB": text}}))
    with pytest.raises(UserError) as caught:
        substitute(workload, outputs)
    assert caught.value.message == "Score placeholders could not be resolved"
    assert [str(p) for p in caught.value.problems] == [
        f"containers.web.variables.DB: unknown placeholder {text}: {reason}"
    ]


def test_every_unresolvable_placeholder_is_reported() -> None:
    workload = parse_score(
        score({"variables": {"A": "${resources.db.a}-${resources.db.b}"}, "args": ["${resources.cache.c}"]})
    )
    with pytest.raises(UserError) as caught:
        substitute(workload, OUTPUTS)
    assert [(p.path, p.message.split(":")[0]) for p in caught.value.problems] == [
        ("containers.web.variables.A", "unknown placeholder ${resources.db.a}"),
        ("containers.web.variables.A", "unknown placeholder ${resources.db.b}"),
        ("containers.web.args.0", "unknown placeholder ${resources.cache.c}"),
    ]


def test_substitute_checks_references_of_hand_built_workloads_too() -> None:
    workload = parse_score(score())
    web = replace(workload.containers["web"], variables={"A": "${resources.pg.host}"})
    hand_built = replace(workload, containers={"web": web})
    with pytest.raises(UserError, match="resource 'pg' is not declared in resources"):
        substitute(hand_built, OUTPUTS)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="${}.\\ab", max_size=20))
def test_escaped_text_expands_to_itself(text: str) -> None:
    escaped = escape(text)
    assert expand(escaped) == text
    assert not list(references_in(escaped))


FRAGMENTS = st.lists(
    st.sampled_from(
        ["$", "{", "}", "${", "$$", ".", "\\.", "metadata", "resources", "name", "tier", "db", "host", "x"]
    ),
    max_size=8,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(FRAGMENTS)
def test_parse_time_checks_agree_with_substitute(text: str) -> None:
    base = parse_score(score())
    hand_built = replace(base, containers={"web": replace(base.containers["web"], variables={"X": text})})
    try:
        parse_score(score({"variables": {"X": text}}))
    except UserError:
        with pytest.raises(UserError):
            substitute(hand_built, OUTPUTS)  # what parse rejects can never be substituted
        return
    if "${resources." not in text.replace("$${", ""):
        substitute(hand_built, {})  # only resource outputs are unknown at parse time


def test_an_environment_variable_in_a_command_gets_a_suggestion_that_works() -> None:
    """${PORT} is the app's environment, not Score's: the hint is a shell command reading $PORT, which Score
    leaves alone and a shell expands (deployed and served in tests/e2e/test_first_hour_deploys.py)."""
    [(path, message)] = parse_problems(score({"command": ["python3", "app.py", "--port", "${PORT}"]}))
    assert path == "containers.web.command.3"
    suggestion = '["sh", "-c", "exec python3 app.py --port $PORT"]'
    assert suggestion in message
    assert "the app's port is in PORT" in message
    parse_score(score({"command": json.loads(suggestion)}))  # valid as suggested
    assert substitute(parse_score(score({"command": json.loads(suggestion)})), {}).containers[
        "web"
    ].command == (
        "sh",
        "-c",
        "exec python3 app.py --port $PORT",
    )
