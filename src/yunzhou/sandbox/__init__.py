"""Run one command in a runc container (see docs/images.md, "Sandbox")."""

from yunzhou.sandbox.bundle import ContainerSpec, Mount, NetworkAttachment, render_config, write_bundle
from yunzhou.sandbox.runc import ContainerState, Runc, SandboxCancelled, SandboxError, SandboxTimeout

__all__ = [
    "ContainerSpec",
    "ContainerState",
    "Mount",
    "NetworkAttachment",
    "Runc",
    "SandboxCancelled",
    "SandboxError",
    "SandboxTimeout",
    "render_config",
    "write_bundle",
]
