"""Typed HTTP client for the Yunzhou API, used by the CLI, the console's tests and e2e tests."""

from yunzhou.client.artifact import (
    SKIPPED_NAMES,
    LeftOut,
    SourceArchive,
    artifact_digest,
    build_artifact,
    pack_source,
)
from yunzhou.client.builds import TERMINAL_BUILD_STATES
from yunzhou.client.config import (
    DEFAULT_URL,
    ClientConfig,
    admin_token_path,
    default_data_dir,
    load_config,
    read_admin_token,
)
from yunzhou.client.discovery import ServerEntry, find_server, publish_server, withdraw_server
from yunzhou.client.errors import ApiError, ClientError, ServerUnreachable, WaitTimeout
from yunzhou.client.http import TERMINAL_ROLLOUT_STATES, YunzhouClient

__all__ = [
    "DEFAULT_URL",
    "SKIPPED_NAMES",
    "TERMINAL_BUILD_STATES",
    "TERMINAL_ROLLOUT_STATES",
    "ApiError",
    "ClientConfig",
    "ClientError",
    "LeftOut",
    "ServerEntry",
    "ServerUnreachable",
    "SourceArchive",
    "WaitTimeout",
    "YunzhouClient",
    "admin_token_path",
    "artifact_digest",
    "build_artifact",
    "default_data_dir",
    "find_server",
    "load_config",
    "pack_source",
    "publish_server",
    "read_admin_token",
    "withdraw_server",
]
