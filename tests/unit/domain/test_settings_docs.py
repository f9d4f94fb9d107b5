"""Every settings, policy, rule and receiver example in the docs is what the server's own parser accepts.

Each ```yaml block of the pages below goes through the pure parser the server uses on it:

- docs/settings.md, traffic.md, autoscaling.md, kubernetes.md and cli.md: ``parse_settings``, once per
  environment the document names and once without one (``traffic:``, ``rollout:`` and ``autoscaling:``
  blocks are settings documents too);
- docs/alerts.md: a document with ``alert`` is a rule (``parse_rule``), one with ``kind`` a receiver
  (``parse_receiver_config`` + ``parse_route``), any other a tuning of a default rule (``parse_override``).

A block may be preceded by a marker line:

- ``<!-- invalid -->``: the parser must refuse it, and the next ```text block lists the problems, one
  ``path: message`` per line, exactly;
- ``<!-- fragment -->``: only a part of a document; it must still be YAML;
- ``<!-- output -->``: what Yunzhou renders or prints (a manifest), not a document given to it; YAML too.

In ```console blocks of alerts.md, the lines after ``$ cat FILE.yaml`` are that file: checked the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from yunzhou.domain.alert_routing import DEFAULT_GROUP_BY, parse_receiver_config, parse_route
from yunzhou.domain.alerts import (
    DEFAULT_COOLDOWN,
    DEFAULT_MAX_ACTIONS_PER_HOUR,
    DEFAULT_RULES,
    parse_override,
    parse_rule,
)
from yunzhou.domain.autoscale.policy import parse_autoscaling
from yunzhou.domain.errors import UserError
from yunzhou.domain.score.text import load_yaml12
from yunzhou.domain.settings import parse_settings

DOCS = Path(__file__).resolve().parents[3] / "docs"
SETTINGS_PAGES = ("settings.md", "traffic.md", "autoscaling.md", "cli.md", "kubernetes.md")
ALERT_PAGES = ("alerts.md",)
BLOCK_RE = re.compile(
    r"^(?:<!-- (?P<marker>[^\n]*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)^```", re.DOTALL | re.MULTILINE
)
CAT_RE = re.compile(r"^\$ cat (\S+\.ya?ml)\n(?P<body>(?:(?!\$ ).*\n)+)", re.MULTILINE)
MARKERS = {"", "invalid", "fragment", "output"}


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    marker: str
    body: str
    error: str | None  # the ```text block after an invalid example

    def __str__(self) -> str:
        return f"docs/{self.page}:{self.line}"


def _examples(page: str) -> list[Example]:
    text = (DOCS / page).read_text()
    blocks = list(BLOCK_RE.finditer(text))
    found = []
    for i, m in enumerate(blocks):
        line = text.count("\n", 0, m.start("body"))
        if m["lang"] == "yaml":
            after = blocks[i + 1] if i + 1 < len(blocks) else None
            error = after["body"].rstrip("\n") if after is not None and after["lang"] == "text" else None
            found.append(Example(page, line, m["marker"] or "", m["body"], error))
        elif m["lang"] == "console" and page in ALERT_PAGES:
            for cat in CAT_RE.finditer(m["body"]):
                cat_line = line + m["body"].count("\n", 0, cat.start("body")) + 1
                found.append(Example(page, cat_line, "", cat["body"], None))
    return found


EXAMPLES = [e for page in (*SETTINGS_PAGES, *ALERT_PAGES) for e in _examples(page)]


def _check_settings(doc: Any) -> None:
    envs = doc.get("environments") if isinstance(doc, dict) else None
    for env in [None, *(envs or {})]:
        parse_settings(doc, env)


def _check_alerting(doc: Any) -> None:
    if isinstance(doc, dict) and "alert" in doc:
        parse_rule(doc)
    elif isinstance(doc, dict) and "kind" in doc:
        unknown = set(doc) - {"kind", "config", "route"}
        if unknown:
            raise UserError("the receiver is invalid", problems=[])
        parse_receiver_config(doc["kind"], doc.get("config"))
        parse_route(doc.get("route"))
    else:
        parse_override(doc)


def _checker(page: str) -> Callable[[Any], None]:
    return _check_alerting if page in ALERT_PAGES else _check_settings


def test_the_pages_have_examples() -> None:
    pages = {e.page for e in EXAMPLES}
    assert pages == {*SETTINGS_PAGES, *ALERT_PAGES}
    assert len(EXAMPLES) >= 12
    assert any(e.marker == "invalid" for e in EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_example(example: Example) -> None:
    assert example.marker in MARKERS, f"{example}: unknown marker <!-- {example.marker} -->"
    # read as the CLI reads each: settings files with YAML 1.2 (`on` stays a string), rule files with PyYAML
    doc = yaml.safe_load(example.body) if example.page in ALERT_PAGES else load_yaml12(example.body)
    if example.marker in ("fragment", "output"):
        return
    check = _checker(example.page)
    if example.marker == "invalid":
        with pytest.raises(UserError) as caught:
            check(doc)
        assert example.error is not None, f"{example}: an invalid example is followed by a ```text block"
        assert "\n".join(map(str, caught.value.problems)) == example.error
        return
    try:
        check(doc)
    except UserError as exc:
        pytest.fail(f"{example}: the server would refuse this example: {exc}: {list(map(str, exc.problems))}")


def _one(page: str, needle: str) -> dict[str, Any]:
    (doc,) = [yaml.safe_load(e.body) for e in EXAMPLES if e.page == page and needle in e.body]
    assert isinstance(doc, dict)
    return doc


def _seconds(duration: str) -> float:
    return parse_rule({"alert": "A", "expr": "up", "cooldown": duration}).cooldown_s


def test_the_autoscaling_behavior_shown_as_the_defaults_is_the_default() -> None:
    shown = parse_autoscaling(_one("autoscaling.md", "these are the defaults")["autoscaling"])
    bare = parse_autoscaling(
        {
            "maxReplicas": 10,
            "metrics": [{"type": "rps", "target": {"type": "AverageValue", "averageValue": 5}}],
        }
    )
    assert shown.to_dict()["behavior"] == bare.to_dict()["behavior"]


def test_the_rule_and_receiver_defaults_named_in_alerts_md_are_the_parsers() -> None:
    rule = _one("alerts.md", "alert: CheckoutSlow")
    assert _seconds(rule["cooldown"]) == DEFAULT_COOLDOWN
    assert rule["max_actions_per_hour"] == DEFAULT_MAX_ACTIONS_PER_HOUR
    receiver = _one("alerts.md", "kind: email")
    assert tuple(receiver["route"]["group_by"]) == DEFAULT_GROUP_BY
    assert parse_route(receiver["route"]).to_dict() | {"matchers": []} == parse_route(None).to_dict()


def test_a_broken_example_is_caught() -> None:
    """The checkers themselves: a wrong key, a wrong value and a wrong kind each fail."""
    with pytest.raises(UserError):
        _check_settings(
            {"autoscaling": {"minReplicas": 1, "maxReplicas": 3, "scaleToZero": {"idleSeconds": 5}}}
        )
    with pytest.raises(UserError):
        _check_settings({"replicas": 1, "environments": {"prod": {"rollout": {"strategy": "recreate"}}}})
    with pytest.raises(UserError):
        _check_settings({"traffic": {"retries": {"on": ["5xx"]}}})
    with pytest.raises(UserError):
        _check_alerting({"alert": "A", "expr": "up", "for": "soon"})
    with pytest.raises(UserError):
        _check_alerting({"kind": "webhook", "config": {"url": "ftp://x"}})
    with pytest.raises(UserError):
        _check_alerting({"threshold": "high"})


def _all_docs_text() -> str:
    """Every page, whitespace-collapsed (a quoted message may wrap, even after a dot of its path)."""
    text = " ".join(page.read_text() for page in sorted(DOCS.glob("*.md")))
    return re.sub(r"\.\s+(?=[a-z])", ".", re.sub(r"\s+", " ", text))


def _ramp(*weights: int) -> list[dict[str, Any]]:
    return [{"weight": w, "pause": "1m"} for w in weights]


RPS = [{"type": "rps", "target": {"type": "AverageValue", "averageValue": 5}}]
# Messages the prose quotes (not in a yaml block), each with a document that gives it.
QUOTED: list[tuple[str, Callable[[], object]]] = [
    (
        "settings.autoscaling.metrics.0.target.type: 'Value' is not allowed; "
        "allowed: Utilization, AverageValue",
        lambda: parse_settings(
            {
                "autoscaling": {
                    "maxReplicas": 2,
                    "metrics": [{"type": "cpu", "target": {"type": "Value", "value": 1}}],
                }
            }
        ),
    ),
    (
        "settings.autoscaling.maxReplicas: must be at least minReplicas (3)",
        lambda: parse_settings({"autoscaling": {"minReplicas": 3, "maxReplicas": 2, "metrics": RPS}}),
    ),
    (
        "settings.traffic.routes.0.to: weights must sum to 100 (they sum to 90)",
        lambda: parse_settings(
            {"traffic": {"routes": [{"name": "a", "to": [{"release": "stable", "weight": 90}]}]}}
        ),
    ),
    (
        "settings.rollout.steps.1.weight: must not be lower than the step before (50)",
        lambda: parse_settings({"rollout": {"strategy": "canary", "steps": _ramp(50, 10)}}),
    ),
    (
        "settings.traffic.retries.attempts: must be an integer 0-10",
        lambda: parse_settings({"traffic": {"retries": {"attempts": 11}}}),
    ),
    (
        "rule.for: '2 minutes' is not a duration",
        lambda: parse_rule({"alert": "A", "expr": "up", "for": "2 minutes"}),
    ),
]


@pytest.mark.parametrize(("message", "refuse"), QUOTED, ids=[m.split(":")[0] for m, _ in QUOTED])
def test_a_message_the_prose_quotes_is_the_parsers(message: str, refuse: Callable[[], object]) -> None:
    assert message in _all_docs_text(), "no page quotes this message any more: update QUOTED"
    with pytest.raises(UserError) as caught:
        refuse()
    assert any(str(p).startswith(message) for p in caught.value.problems), list(
        map(str, caught.value.problems)
    )


def test_the_default_rules_table_in_alerts_md_is_the_default_rules() -> None:
    rows = re.findall(
        r"^\| `(App\w+)` \| (.*?) \| ([\d.]+)(?: \(s\))? \| (\S+) \| (\S+) \| (\w+) \|$",
        (DOCS / "alerts.md").read_text(),
        re.MULTILINE,
    )
    shown = {
        name: (float(threshold), window, _seconds(for_), severity)
        for name, _, threshold, window, for_, severity in rows
    }
    uses_window = {d.alert: "{window}" in d.expr for d in DEFAULT_RULES}
    assert shown == {
        d.alert: (float(d.threshold), d.window if uses_window[d.alert] else "–", d.for_s, d.severity)
        for d in DEFAULT_RULES
    }
