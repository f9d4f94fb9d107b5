"""The local data plane: an HTTP/1.1 reverse proxy in its own process, configured by versioned snapshots.

Other packages use only what is exported here: ``RouterProcess`` to run one, ``parse_snapshot`` to check
a snapshot before pushing it. See docs/router.md for the snapshot format and the admin API.
"""

from yunzhou.router.config import Backend, Route, Snapshot, parse_snapshot
from yunzhou.router.process import RouterProcess

__all__ = ["Backend", "Route", "RouterProcess", "Snapshot", "parse_snapshot"]
