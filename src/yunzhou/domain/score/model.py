"""The Score workload as frozen domain objects, and their canonical document form (``to_dict``).

Collections inside a workload are read-only (``FrozenMap`` and tuples), so a parsed workload can be
shared, hashed and stored without defensive copies. ``to_dict`` writes only what was set, with files
and volumes always in the map form; ``parse_score(w.to_dict()) == w``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from decimal import ROUND_CEILING, Decimal
from typing import Any, ClassVar, Literal, TypeAlias, TypeVar

from yunzhou.domain.errors import invalid
from yunzhou.domain.score.rules import CPU_RE, CPU_RULE, MEMORY_RE, MEMORY_RULE

API_VERSION = "score.dev/v1b1"

Protocol = Literal["TCP", "UDP"]
Scheme = Literal["HTTP", "HTTPS"]
Ready = Literal["started", "healthy", "complete"]
JSONValue: TypeAlias = "str | int | float | bool | tuple[JSONValue, ...] | Mapping[str, JSONValue] | None"

_K = TypeVar("_K")
_V_co = TypeVar("_V_co", covariant=True)


class FrozenMap(Mapping[_K, _V_co]):
    """A read-only, hashable mapping that keeps insertion order (and so the document's order)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[_K, _V_co] | Iterable[tuple[_K, _V_co]] = ()) -> None:
        self._items: dict[_K, _V_co] = dict(items)

    def __getitem__(self, key: _K) -> _V_co:
        return self._items[key]

    def __iter__(self) -> Iterator[_K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"


def freeze_json(value: object) -> JSONValue:
    """Make JSON data read-only: mappings become FrozenMap, lists become tuples (input already checked)."""
    if isinstance(value, Mapping):
        return FrozenMap((str(k), freeze_json(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(freeze_json(v) for v in value)
    assert value is None or isinstance(value, str | int | float | bool)
    return value


def thaw_json(value: JSONValue) -> Any:
    """The plain ``dict``/``list`` form of frozen JSON data."""
    if isinstance(value, Mapping):
        return {k: thaw_json(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw_json(v) for v in value]
    return value


class _Frozen:
    """Mapping fields become FrozenMap and list fields tuples, so hand-built objects equal parsed ones."""

    _json_fields: ClassVar[tuple[str, ...]] = ()  # free-form JSON: frozen all the way down

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name in self._json_fields and value is not None:
                object.__setattr__(self, f.name, freeze_json(value))
            elif isinstance(value, Mapping) and not isinstance(value, FrozenMap):
                object.__setattr__(self, f.name, FrozenMap(value))
            elif isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))


def _some(out: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        out[key] = value


@dataclass(frozen=True, kw_only=True)
class Metadata(_Frozen):
    _json_fields = ("extra",)

    name: str
    annotations: Mapping[str, str] = field(default_factory=FrozenMap)
    extra: Mapping[str, JSONValue] = field(default_factory=FrozenMap)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        out.update((k, thaw_json(v)) for k, v in self.extra.items())
        return out


@dataclass(frozen=True, kw_only=True)
class ServicePort(_Frozen):
    port: int
    protocol: Protocol | None = None
    target_port: int | None = None

    @property
    def effective_target_port(self) -> int:
        """Where the container listens: ``targetPort``, defaulting to ``port``."""
        return self.port if self.target_port is None else self.target_port

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"port": self.port}
        _some(out, "protocol", self.protocol)
        _some(out, "targetPort", self.target_port)
        return out


@dataclass(frozen=True, kw_only=True)
class Service(_Frozen):
    ports: Mapping[str, ServicePort] = field(default_factory=FrozenMap)

    def to_dict(self) -> dict[str, Any]:
        return {"ports": {k: p.to_dict() for k, p in self.ports.items()}} if self.ports else {}


@dataclass(frozen=True, kw_only=True)
class File(_Frozen):
    """A file mounted at its target (the key in ``Container.files``); exactly one of the three sources."""

    mode: str | None = None
    source: str | None = None
    content: str | None = None
    binary_content: str | None = None
    no_expand: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _some(out, "mode", self.mode)
        _some(out, "source", self.source)
        _some(out, "content", self.content)
        _some(out, "binaryContent", self.binary_content)
        _some(out, "noExpand", self.no_expand)
        return out


@dataclass(frozen=True, kw_only=True)
class Volume(_Frozen):
    """A volume mounted at its target path (the key in ``Container.volumes``)."""

    source: str
    path: str | None = None
    read_only: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source}
        _some(out, "path", self.path)
        _some(out, "readOnly", self.read_only)
        return out


_DECIMAL_UNITS = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_BINARY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def parse_cpu_millicores(text: str, path: str = "cpu") -> int:
    """``"250m"`` → 250, ``"0.5"`` → 500, ``"2"`` → 2000; finer than 1m rounds up, as Kubernetes does."""
    if not CPU_RE.fullmatch(text):
        raise invalid(path, CPU_RULE)
    if text.endswith("m"):
        return _ceil(Decimal(text[:-1]))
    return _ceil(Decimal(text) * 1000)


def parse_memory_bytes(text: str, path: str = "memory") -> int:
    """``"128M"`` → 128000000, ``"1.5Gi"`` → 1610612736; fractions of a byte round up."""
    if not MEMORY_RE.fullmatch(text):
        raise invalid(path, MEMORY_RULE)
    for units in (_BINARY_UNITS, _DECIMAL_UNITS):
        for suffix, multiplier in units.items():
            if text.endswith(suffix):
                return _ceil(Decimal(text[: -len(suffix)]) * multiplier)
    return _ceil(Decimal(text))


@dataclass(frozen=True, kw_only=True)
class ResourceLimits(_Frozen):
    """CPU and memory for ``limits`` or ``requests``, as written, with parsed helpers."""

    cpu: str | None = None
    memory: str | None = None

    @property
    def millicores(self) -> int | None:
        return None if self.cpu is None else parse_cpu_millicores(self.cpu)

    @property
    def memory_bytes(self) -> int | None:
        return None if self.memory is None else parse_memory_bytes(self.memory)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _some(out, "cpu", self.cpu)
        _some(out, "memory", self.memory)
        return out


@dataclass(frozen=True, kw_only=True)
class ContainerResources(_Frozen):
    limits: ResourceLimits | None = None
    requests: ResourceLimits | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.limits is not None:
            out["limits"] = self.limits.to_dict()
        if self.requests is not None:
            out["requests"] = self.requests.to_dict()
        return out


@dataclass(frozen=True, kw_only=True)
class HttpHeader(_Frozen):
    name: str
    value: str


@dataclass(frozen=True, kw_only=True)
class HttpProbe(_Frozen):
    port: int
    path: str
    host: str | None = None
    scheme: Scheme | None = None
    headers: tuple[HttpHeader, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _some(out, "host", self.host)
        _some(out, "scheme", self.scheme)
        out["path"] = self.path
        out["port"] = self.port
        if self.headers:
            out["httpHeaders"] = [{"name": h.name, "value": h.value} for h in self.headers]
        return out


@dataclass(frozen=True, kw_only=True)
class ExecProbe(_Frozen):
    command: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Probe(_Frozen):
    """At least one of ``http_get`` and ``exec``; when both are set, runtimes prefer ``exec``."""

    http_get: HttpProbe | None = None
    exec: ExecProbe | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.http_get is not None:
            out["httpGet"] = self.http_get.to_dict()
        if self.exec is not None:
            out["exec"] = {"command": list(self.exec.command)}
        return out


@dataclass(frozen=True, kw_only=True)
class ContainerDependency(_Frozen):
    """An entry of ``before``: that container must reach ``ready`` before this one starts."""

    ready: Ready


@dataclass(frozen=True, kw_only=True)
class Container(_Frozen):
    image: str
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    variables: Mapping[str, str] = field(default_factory=FrozenMap)
    files: Mapping[str, File] = field(default_factory=FrozenMap)
    volumes: Mapping[str, Volume] = field(default_factory=FrozenMap)
    resources: ContainerResources = field(default_factory=ContainerResources)
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    before: Mapping[str, ContainerDependency] = field(default_factory=FrozenMap)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"image": self.image}
        if self.command is not None:
            out["command"] = list(self.command)
        if self.args is not None:
            out["args"] = list(self.args)
        if self.variables:
            out["variables"] = dict(self.variables)
        if self.files:
            out["files"] = {target: f.to_dict() for target, f in self.files.items()}
        if self.volumes:
            out["volumes"] = {target: v.to_dict() for target, v in self.volumes.items()}
        if resources := self.resources.to_dict():
            out["resources"] = resources
        if self.liveness_probe is not None:
            out["livenessProbe"] = self.liveness_probe.to_dict()
        if self.readiness_probe is not None:
            out["readinessProbe"] = self.readiness_probe.to_dict()
        if self.before:
            out["before"] = {name: {"ready": d.ready} for name, d in self.before.items()}
        return out


@dataclass(frozen=True, kw_only=True)
class Resource(_Frozen):
    _json_fields = ("metadata", "params")

    type: str
    class_: str | None = None
    id: str | None = None
    metadata: Mapping[str, JSONValue] | None = None
    params: Mapping[str, JSONValue] | None = None

    @property
    def annotations(self) -> Mapping[str, str]:
        found = (self.metadata or {}).get("annotations")
        return (
            FrozenMap((k, v) for k, v in found.items() if isinstance(v, str))
            if isinstance(found, Mapping)
            else FrozenMap()
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        _some(out, "class", self.class_)
        _some(out, "id", self.id)
        if self.metadata is not None:
            out["metadata"] = thaw_json(self.metadata)
        if self.params is not None:
            out["params"] = thaw_json(self.params)
        return out


@dataclass(frozen=True, kw_only=True)
class Workload(_Frozen):
    api_version: str = API_VERSION
    metadata: Metadata
    service: Service | None = None
    containers: Mapping[str, Container]
    resources: Mapping[str, Resource] = field(default_factory=FrozenMap)

    @property
    def name(self) -> str:
        return self.metadata.name

    def to_dict(self) -> dict[str, Any]:
        """The canonical document: what releases store; ``parse_score(w.to_dict()) == w``."""
        out: dict[str, Any] = {"apiVersion": self.api_version, "metadata": self.metadata.to_dict()}
        if self.service is not None:
            out["service"] = self.service.to_dict()
        out["containers"] = {name: c.to_dict() for name, c in self.containers.items()}
        if self.resources:
            out["resources"] = {name: r.to_dict() for name, r in self.resources.items()}
        return out
