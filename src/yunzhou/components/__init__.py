"""Processes the server starts, watches and stops (ARCHITECTURE.md: router, registry, builder, …).

``ChildProcess`` is the one way to run such a component: started with an explicit environment, killed
with its parent (even on ``kill -9``), its output appended to a log file, ready when a check says so,
stopped with SIGTERM then SIGKILL. The registry uses it; the router keeps its own class (an admin API
and a drain) but is started and stopped with the same ``die_with_parent`` and ``terminate``.
"""

from yunzhou.components.child import ChildProcess, die_with_parent, terminate

__all__ = ["ChildProcess", "die_with_parent", "terminate"]
