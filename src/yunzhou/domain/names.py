"""Names and addresses: projects, environments and apps are RFC 1123 DNS labels."""

from __future__ import annotations

import re
from dataclasses import dataclass

from yunzhou.domain.errors import FieldProblem, UserError, invalid

DNS_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DNS_LABEL_RULE = (
    "must be a DNS label: 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit"
)


DNS_NAME_RE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def is_dns_name(value: object) -> bool:
    """A lower-case DNS name such as orders.example.test (labels of a-z, 0-9, '-'; at most 253 chars)."""
    return isinstance(value, str) and DNS_NAME_RE.fullmatch(value) is not None


def label_problem(value: object) -> str | None:
    """Why ``value`` is not a DNS label, or None when it is one."""
    if not isinstance(value, str):
        return f"must be a string; {DNS_LABEL_RULE}"
    if DNS_LABEL_RE.fullmatch(value):
        return None
    return f"{value!r} {DNS_LABEL_RULE}"


def check_label(value: object, path: str) -> str:
    problem = label_problem(value)
    if problem is not None:
        raise invalid(path, problem)
    assert isinstance(value, str)
    return value


@dataclass(frozen=True, order=True)
class EnvAddress:
    project: str
    env: str

    def __str__(self) -> str:
        return f"{self.project}/{self.env}"


@dataclass(frozen=True, order=True)
class AppAddress:
    project: str
    env: str
    app: str

    @property
    def env_address(self) -> EnvAddress:
        return EnvAddress(self.project, self.env)

    def __str__(self) -> str:
        return f"{self.project}/{self.env}/{self.app}"


def _split(text: str, parts: int, what: str, example: str) -> list[str]:
    pieces = text.split("/")
    if len(pieces) != parts:
        raise invalid(what, f"{text!r} is not an address of the form {example}")
    problems = [
        FieldProblem(f"{what}.{part}", msg)
        for part, piece in zip(("project", "env", "app"), pieces, strict=False)
        if (msg := label_problem(piece)) is not None
    ]
    if problems:
        raise UserError(f"{what}: {text!r} is not a valid address ({example})", problems=problems)
    return pieces


def parse_env_address(text: str) -> EnvAddress:
    project, env = _split(text, 2, "environment", "PROJECT/ENV, e.g. shop/dev")
    return EnvAddress(project, env)


def parse_app_address(text: str) -> AppAddress:
    project, env, app = _split(text, 3, "app", "PROJECT/ENV/APP, e.g. shop/dev/orders")
    return AppAddress(project, env, app)


def default_host(app: str, env: str, project: str, base_domain: str) -> str:
    """The internal name every app gets: ``{app}.{env}.{project}.{base_domain}``."""
    return f"{app}.{env}.{project}.{base_domain}"


# ---- naming rules (docs/names.md): the DNS name an environment's apps get, e.g. {app}.{env}.{project}.{zone}
NAMING_RULE_DEFAULT = "{app}.{env}.{project}.{zone}"
_RULE_FIELDS = ("app", "env", "project", "zone")
_RULE_TOKEN = re.compile(r"\{([^{}]*)\}")


def check_naming_rule(rule: object, path: str = "names.rule") -> str:
    """A rule names every app of one environment apart from every other project's: it must contain
    ``{app}`` and ``{project}`` and end with ``.{zone}``; the rest are DNS-label characters and dots."""
    if not isinstance(rule, str) or not rule:
        raise invalid(path, f"must be a string such as {NAMING_RULE_DEFAULT}")
    fields = _RULE_TOKEN.findall(rule)
    unknown = sorted(set(fields) - set(_RULE_FIELDS))
    if unknown:
        allowed = ", ".join("{" + f + "}" for f in _RULE_FIELDS)
        raise invalid(path, f"{rule!r} uses {{{unknown[0]}}}; the placeholders are {allowed}")
    if "app" not in fields or "project" not in fields:
        raise invalid(
            path, f"{rule!r} must contain {{app}} and {{project}}, so that no two apps share a name"
        )
    if not rule.endswith(".{zone}") or fields.count("zone") != 1:
        raise invalid(
            path, f"{rule!r} must end with .{{zone}} (and name the zone once): names stay in the zone"
        )
    literal = _RULE_TOKEN.sub("x", rule)
    if not is_dns_name(literal):
        raise invalid(path, f"{rule!r}: between the placeholders only a-z, 0-9, '-' and '.' (DNS labels)")
    return rule


def render_naming_rule(rule: str, *, app: str, env: str, project: str, zone: str) -> str:
    """The name ``rule`` gives an app (checked: a DNS name of at most 253 characters)."""
    values = {"app": app, "env": env, "project": project, "zone": zone}
    name = _RULE_TOKEN.sub(lambda m: values[m.group(1)], rule)
    if not is_dns_name(name):
        raise invalid("names.rule", f"gives {name!r} for app {project}/{env}/{app}, which is not a DNS name")
    return name
