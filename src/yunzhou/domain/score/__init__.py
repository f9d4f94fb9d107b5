"""Score (score.dev/v1b1) workloads: parse and validate, normalise, expand placeholders.

    from yunzhou.domain.score import load_score, parse_score, substitute

``load_score(text)`` / ``parse_score(doc)`` return a frozen ``Workload`` or raise ``UserError`` listing
every problem with its field path. ``Workload.to_dict()`` is the canonical document that releases store.
"""

from yunzhou.domain.score.model import (
    API_VERSION,
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
    Protocol,
    Ready,
    Resource,
    ResourceLimits,
    Scheme,
    Service,
    ServicePort,
    Volume,
    Workload,
    parse_cpu_millicores,
    parse_memory_bytes,
)
from yunzhou.domain.score.parse import parse_score
from yunzhou.domain.score.placeholders import escape, referenced_resources, resource_references, substitute
from yunzhou.domain.score.text import load_score

__all__ = [
    "API_VERSION",
    "Container",
    "ContainerDependency",
    "ContainerResources",
    "ExecProbe",
    "File",
    "FrozenMap",
    "HttpHeader",
    "HttpProbe",
    "JSONValue",
    "Metadata",
    "Probe",
    "Protocol",
    "Ready",
    "Resource",
    "ResourceLimits",
    "Scheme",
    "Service",
    "ServicePort",
    "Volume",
    "Workload",
    "escape",
    "load_score",
    "parse_cpu_millicores",
    "parse_memory_bytes",
    "parse_score",
    "referenced_resources",
    "resource_references",
    "substitute",
]
