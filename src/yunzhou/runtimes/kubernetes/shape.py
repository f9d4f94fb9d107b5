"""What the optional renderers (observability, autoscaling, traffic) need to know about a rendered app."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]


@dataclass(frozen=True)
class AppShape:
    project: str
    env: str
    app: str
    key: str  # the yunzhou.io/app label value (project.env.app)
    namespace: str
    kind: str  # Deployment | StatefulSet
    ports: Mapping[str, int]  # service port name → port
    metadata: Mapping[str, Any]  # metadata (name, namespace, labels) for the objects rendered beside it
