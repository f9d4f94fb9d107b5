"""``parse_score``: check a Score document (JSON data) against score.dev/v1b1 and build the Workload.

Every problem is collected (not only the first) with the dotted path of the field. On top of the
schema, three things the schema cannot say are checked, as score-go's loader does: placeholders must be
resolvable (``${resources.X...}`` names a declared resource), ``before`` names other containers without
cycles, and the deprecated list form of files/volumes gives each entry a distinct ``target`` (it becomes
the key of the map form).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from yunzhou.domain.errors import UserError
from yunzhou.domain.score import placeholders, rules
from yunzhou.domain.score.model import (
    Container,
    ContainerDependency,
    ContainerResources,
    ExecProbe,
    File,
    FrozenMap,
    HttpHeader,
    HttpProbe,
    JSONValue,
    Metadata,
    Probe,
    Resource,
    ResourceLimits,
    Service,
    ServicePort,
    Volume,
    Workload,
)
from yunzhou.domain.score.paths import at
from yunzhou.domain.score.shapes import Checker, find_cycle, kind, show

_T = TypeVar("_T")

_WORKLOAD_FIELDS = ("apiVersion", "metadata", "service", "containers", "resources")
_CONTAINER_FIELDS = (
    "image", "command", "args", "variables", "files", "volumes", "resources",
    "livenessProbe", "readinessProbe", "before",
)  # fmt: skip
_FILE_FIELDS = ("target", "mode", "source", "content", "binaryContent", "noExpand")
_FILE_SOURCES = ("content", "binaryContent", "source")
_VOLUME_FIELDS = ("source", "path", "target", "readOnly")
_PORT_FIELDS = ("port", "protocol", "targetPort")
_RESOURCE_FIELDS = ("type", "class", "id", "metadata", "params")
_HTTP_FIELDS = ("host", "scheme", "path", "port", "httpHeaders")


def parse_score(doc: object) -> Workload:
    """Validate a parsed Score document and return the Workload; raise UserError listing every problem."""
    parser = _Parser()
    workload = parser.workload(doc)
    if parser.problems:
        raise UserError("Score file is invalid", problems=parser.problems)
    return workload


class _Parser(Checker):
    def __init__(self) -> None:
        super().__init__()
        self.resolver = placeholders.Resolver(None, set())
        self.waits_for: dict[str, list[str]] = {}  # container -> containers in its `before`
        self.resource_refs: dict[str, list[str]] = {}  # resource -> resources its params refer to

    def check_placeholders(self, text: str, path: str) -> None:
        placeholders.check(text, path, self.resolver, self.problems)

    def expanded_strings(self, value: object, path: str) -> tuple[str, ...]:
        items = self.strings(value, path)
        for index, item in enumerate(items):
            self.check_placeholders(item, at(path, index))
        return items

    # -- the workload -------------------------------------------------------------------------------

    def workload(self, doc: object) -> Workload:
        raw = self.mapping(doc, "", _WORKLOAD_FIELDS, ("apiVersion", "metadata", "containers"))
        if raw is None:
            return Workload(metadata=Metadata(name=""), containers={})
        api_version = self.field(raw, "apiVersion", "", self.api_version, "")
        before = len(self.problems)
        metadata = self.field(raw, "metadata", "", self.metadata, Metadata(name=""))
        metadata_ok = "metadata" in raw and len(self.problems) == before
        declared = raw.get("resources")
        names = {k for k in declared if isinstance(k, str)} if isinstance(declared, dict) else set()
        self.resolver = placeholders.Resolver(metadata.to_dict() if metadata_ok else None, names)
        service = self.field(raw, "service", "", self.service, None)
        containers: dict[str, Container] = self.field(raw, "containers", "", self.containers, {})
        resources: dict[str, Resource] = self.field(raw, "resources", "", self.resources, {})
        self.check_before(containers)
        self.check_resource_cycles()
        return Workload(
            api_version=api_version,
            metadata=metadata,
            service=service,
            containers=containers,
            resources=resources,
        )

    def api_version(self, value: object, path: str) -> str:
        if value not in rules.API_VERSIONS or not isinstance(value, str):
            self.add(path, f"must be {' or '.join(map(repr, rules.API_VERSIONS))}")
            return ""
        return value

    def metadata(self, value: object, path: str) -> Metadata:
        raw = self.mapping(value, path, None, ("name",))
        if raw is None:
            return Metadata(name="")
        name = self.field(raw, "name", path, self.name, "")
        annotations: dict[str, str] = self.field(raw, "annotations", path, self.annotations, {})
        extra = {k: self.json(v, at(path, k)) for k, v in self.items(raw) if k not in ("name", "annotations")}
        return Metadata(name=name, annotations=annotations, extra=extra)

    def name(self, value: object, path: str) -> str:
        return self.matching(value, path, rules.is_name, rules.NAME_RULE) or ""

    def annotations(self, value: object, path: str) -> dict[str, str]:
        out = {}
        for key, item in self.items(self.mapping(value, path, None) or {}):
            if not rules.is_annotation_key(key):
                self.add(at(path, key), f"{rules.ANNOTATION_KEY_RULE} (got {show(key)})")
            text = self.string(item, at(path, key))
            if text is not None:
                out[key] = text
        return out

    def service(self, value: object, path: str) -> Service:
        raw = self.mapping(value, path, ("ports",))
        ports: dict[str, ServicePort] = {}
        if raw is not None and "ports" in raw:
            for name, item, item_path in self.named(raw["ports"], at(path, "ports"), "port"):
                ports[name] = self.service_port(item, item_path)
        return Service(ports=ports)

    def service_port(self, value: object, path: str) -> ServicePort:
        raw = self.mapping(value, path, _PORT_FIELDS, ("port",))
        if raw is None:
            return ServicePort(port=0)
        return ServicePort(
            port=self.field(raw, "port", path, self.port, 0),
            protocol=self.field(raw, "protocol", path, lambda v, p: self.choice(v, p, rules.PROTOCOLS), None),
            target_port=self.field(raw, "targetPort", path, self.port, None),
        )

    def containers(self, value: object, path: str) -> dict[str, Container]:
        if isinstance(value, dict) and not value:
            self.add(path, "must declare at least one container")
        return {name: self.container(item, p, name) for name, item, p in self.named(value, path, "container")}

    def resources(self, value: object, path: str) -> dict[str, Resource]:
        return {name: self.resource(item, p, name) for name, item, p in self.named(value, path, "resource")}

    # -- containers ---------------------------------------------------------------------------------

    def container(self, value: object, path: str, name: str) -> Container:
        raw = self.mapping(value, path, _CONTAINER_FIELDS, ("image",))
        if raw is None:
            return Container(image="")
        probe = self.probe
        return Container(
            image=self.field(raw, "image", path, self.non_empty, None) or "",
            command=self.field(raw, "command", path, self.expanded_strings, None),
            args=self.field(raw, "args", path, self.expanded_strings, None),
            variables=self.field(raw, "variables", path, self.variables, {}),
            files=self.field(raw, "files", path, lambda v, p: self.mounts(v, p, self.file, 1), {}),
            volumes=self.field(raw, "volumes", path, lambda v, p: self.mounts(v, p, self.volume, 0), {}),
            resources=self.field(raw, "resources", path, self.container_resources, ContainerResources()),
            liveness_probe=self.field(raw, "livenessProbe", path, probe, None),
            readiness_probe=self.field(raw, "readinessProbe", path, probe, None),
            before=self.field(raw, "before", path, lambda v, p: self.before(v, p, name), {}),
        )

    def variables(self, value: object, path: str) -> dict[str, str]:
        out = {}
        for key, item in self.items(self.mapping(value, path, None) or {}):
            if not key or "=" in key:
                self.add(at(path, key), f"{rules.VARIABLE_NAME_RULE} (got {show(key)})")
            text = self.string(item, at(path, key))
            if text is not None:
                out[key] = text
                self.check_placeholders(text, at(path, key))
        return out

    def mounts(
        self, value: object, path: str, parse: Callable[[dict[Any, object], str], _T], min_target: int
    ) -> dict[str, _T]:
        """Files or volumes: the map form (target → entry) or the deprecated list form (with ``target``)."""
        out: dict[str, _T] = {}
        if isinstance(value, list):
            seen: dict[str, str] = {}
            for index, item in enumerate(value):
                item_path = at(path, index)
                raw = self.mapping(item, item_path, None)
                if raw is None:
                    continue
                entry = parse(raw, item_path)
                if "target" not in raw:
                    self.add(at(item_path, "target"), "required in the list form (it becomes the map key)")
                    continue
                target = self.string(raw["target"], at(item_path, "target"), non_empty=min_target > 0)
                if target is None:
                    continue
                if target in seen:
                    self.add(at(item_path, "target"), f"{target!r} is already mounted by {seen[target]}")
                    continue
                seen[target] = item_path
                out[target] = entry
        elif isinstance(value, dict):
            for target, item in self.items(self.mapping(value, path, None) or {}):
                item_path = at(path, target)
                raw = self.mapping(item, item_path, None)
                if raw is None:
                    continue
                if "target" in raw:
                    self.add(at(item_path, "target"), "not allowed in the map form: the key is the target")
                out[target] = parse(raw, item_path)
        else:
            self.add(path, f"must be a mapping of target path to entry, or a list (got {kind(value)})")
        return out

    def file(self, raw: dict[Any, object], path: str) -> File:
        self.mapping(raw, path, _FILE_FIELDS)
        given = [k for k in _FILE_SOURCES if k in raw]
        if len(given) != 1:
            which = "none" if not given else " and ".join(given)
            self.add(path, f"needs exactly one of content, binaryContent or source (got {which})")
        no_expand = self.field(raw, "noExpand", path, self.boolean, None)
        content = self.field(raw, "content", path, self.string, None)
        if content is not None and no_expand is not True:
            self.check_placeholders(content, at(path, "content"))
        return File(
            mode=self.field(raw, "mode", path, self.rule(rules.is_mode, rules.MODE_RULE), None),
            source=self.field(raw, "source", path, self.non_empty, None),
            content=content,
            binary_content=self.field(raw, "binaryContent", path, self.string, None),
            no_expand=no_expand,
        )

    def volume(self, raw: dict[Any, object], path: str) -> Volume:
        self.mapping(raw, path, _VOLUME_FIELDS, ("source",))
        source = self.field(raw, "source", path, self.string, None)
        if source is not None:
            self.check_placeholders(source, at(path, "source"))
        return Volume(
            source=source or "",
            path=self.field(raw, "path", path, self.string, None),
            read_only=self.field(raw, "readOnly", path, self.boolean, None),
        )

    def container_resources(self, value: object, path: str) -> ContainerResources:
        raw = self.mapping(value, path, ("limits", "requests"))
        if raw is None:
            return ContainerResources()
        return ContainerResources(
            limits=self.field(raw, "limits", path, self.limits, None),
            requests=self.field(raw, "requests", path, self.limits, None),
        )

    def limits(self, value: object, path: str) -> ResourceLimits:
        raw = self.mapping(value, path, ("cpu", "memory")) or {}
        return ResourceLimits(
            cpu=self.field(raw, "cpu", path, self.rule(rules.is_cpu, rules.CPU_RULE), None),
            memory=self.field(raw, "memory", path, self.rule(rules.is_memory, rules.MEMORY_RULE), None),
        )

    def probe(self, value: object, path: str) -> Probe:
        raw = self.mapping(value, path, ("httpGet", "exec"))
        if raw is None:
            return Probe()
        if "httpGet" not in raw and "exec" not in raw:
            self.add(path, "needs httpGet or exec (or both)")
        return Probe(
            http_get=self.field(raw, "httpGet", path, self.http_probe, None),
            exec=self.field(raw, "exec", path, self.exec_probe, None),
        )

    def http_probe(self, value: object, path: str) -> HttpProbe:
        raw = self.mapping(value, path, _HTTP_FIELDS, ("port", "path"))
        if raw is None:
            return HttpProbe(port=0, path="")
        return HttpProbe(
            port=self.field(raw, "port", path, self.port, 0),
            path=self.field(raw, "path", path, self.string, None) or "",
            host=self.field(raw, "host", path, self.non_empty, None),
            scheme=self.field(raw, "scheme", path, lambda v, p: self.choice(v, p, rules.SCHEMES), None),
            headers=self.field(raw, "httpHeaders", path, self.headers, ()),
        )

    def headers(self, value: object, path: str) -> tuple[HttpHeader, ...]:
        if not isinstance(value, list):
            self.add(path, f"must be a list of {{name, value}} mappings (got {kind(value)})")
            return ()
        out = []
        for index, item in enumerate(value):
            item_path = at(path, index)
            raw = self.mapping(item, item_path, ("name", "value"), ("name", "value"))
            if raw is None:
                continue
            header_name = self.field(
                raw, "name", item_path, self.rule(rules.is_header_name, rules.HEADER_NAME_RULE), None
            )
            header_value = self.field(raw, "value", item_path, self.non_empty, None)
            out.append(HttpHeader(name=header_name or "", value=header_value or ""))
        return tuple(out)

    def exec_probe(self, value: object, path: str) -> ExecProbe:
        raw = self.mapping(value, path, ("command",), ("command",)) or {}
        return ExecProbe(command=self.field(raw, "command", path, self.strings, ()))

    def before(self, value: object, path: str, container: str) -> dict[str, ContainerDependency]:
        out = {}
        waits = self.waits_for.setdefault(container, [])
        for name, item, item_path in self.named(value, path, "container"):
            waits.append(name)
            raw = self.mapping(item, item_path, ("ready",), ("ready",)) or {}
            ready = self.field(
                raw, "ready", item_path, lambda v, p: self.choice(v, p, rules.READY_STATES), None
            )
            out[name] = ContainerDependency(ready=ready or "started")
        return out

    def check_before(self, containers: Mapping[str, Container]) -> None:
        graph: dict[str, list[str]] = {}
        for name, waits in self.waits_for.items():
            for other in waits:
                path = at(at(at("containers", name), "before"), other)
                if other == name:
                    self.add(path, "a container cannot wait for itself")
                elif other not in containers:
                    self.add(path, f"no container named {other!r} in this workload")
                else:
                    graph.setdefault(name, []).append(other)
        if cycle := find_cycle(graph):
            self.add(
                at(at("containers", cycle[0]), "before"),
                f"containers wait for each other: {' → '.join(cycle)}",
            )

    # -- resources ----------------------------------------------------------------------------------

    def resource(self, value: object, path: str, name: str) -> Resource:
        raw = self.mapping(value, path, _RESOURCE_FIELDS, ("type",))
        if raw is None:
            return Resource(type="")
        type_rule = self.rule(rules.is_resource_type, rules.RESOURCE_TYPE_RULE)
        return Resource(
            type=self.field(raw, "type", path, type_rule, None) or "",
            class_=self.field(raw, "class", path, type_rule, None),
            id=self.field(raw, "id", path, self.rule(rules.is_resource_id, rules.RESOURCE_ID_RULE), None),
            metadata=self.field(raw, "metadata", path, self.resource_metadata, None),
            params=self.field(raw, "params", path, lambda v, p: self.params(v, p, name), None),
        )

    def resource_metadata(self, value: object, path: str) -> Mapping[str, JSONValue]:
        raw = self.mapping(value, path, None) or {}
        if "annotations" in raw:
            self.annotations(raw["annotations"], at(path, "annotations"))
        return FrozenMap((k, self.json(v, at(path, k))) for k, v in self.items(raw))

    def params(self, value: object, path: str, resource: str) -> Mapping[str, JSONValue]:
        raw = self.mapping(value, path, None) or {}
        frozen = FrozenMap((k, self.json(v, at(path, k))) for k, v in self.items(raw))
        refs = self.resource_refs.setdefault(resource, [])
        for text_path, text in placeholders.strings_in(frozen, path):
            self.check_placeholders(text, text_path)
            for ref in placeholders.references_in(text):
                parts = placeholders.split_reference(ref)
                if parts[0] == "resources" and len(parts) > 1 and parts[1] in self.resolver.resource_names:
                    if parts[1] == resource:
                        self.add(text_path, f"resource {resource!r} cannot use its own outputs in its params")
                    else:
                        refs.append(parts[1])
        return frozen

    def check_resource_cycles(self) -> None:
        if cycle := find_cycle(self.resource_refs):
            message = f"resources use each other's outputs in a cycle: {' → '.join(cycle)}"
            self.add(at(at("resources", cycle[0]), "params"), message)
