"""Run one command in a runc container (see docs/images.md, "Sandbox")."""

from yunzhou.sandbox.bundle import ContainerSpec, Mount, NetworkAttachment, render_config, write_bundle

__all__ = ["ContainerSpec", "Mount", "NetworkAttachment", "render_config", "write_bundle"]
