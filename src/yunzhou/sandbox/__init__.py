"""Run one command in a runc container (see docs/images.md, "Sandbox")."""

from yunzhou.sandbox.bundle import (
    HOSTS_FILE,
    INIT_MOUNT_POINT,
    ContainerSpec,
    Mount,
    NetworkAttachment,
    render_config,
    write_bundle,
)
from yunzhou.sandbox.network import Network, NetworkError
from yunzhou.sandbox.rootfs import LayerCache, LayerError
from yunzhou.sandbox.runc import ContainerState, Runc, SandboxCancelled, SandboxError, SandboxTimeout

__all__ = [
    "HOSTS_FILE",
    "INIT_MOUNT_POINT",
    "ContainerSpec",
    "ContainerState",
    "LayerCache",
    "LayerError",
    "Mount",
    "Network",
    "NetworkAttachment",
    "NetworkError",
    "Runc",
    "SandboxCancelled",
    "SandboxError",
    "SandboxTimeout",
    "render_config",
    "write_bundle",
]
