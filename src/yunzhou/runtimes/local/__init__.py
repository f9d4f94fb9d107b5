"""The local runtime: instances as real child processes on this machine.

Public surface (import from here, not from the inner modules)::

    LocalSupervisor, ProcessSpec, Probe, LogLine, InstanceStatus, ensure_snapshot, free_port
"""

from yunzhou.runtimes.base import INSTANCE_STATES, InstanceState, InstanceStatus

from .ports import free_port
from .snapshot import ensure_snapshot
from .spec import LogLine, LogStream, Probe, ProcessSpec
from .supervisor import LocalSupervisor

__all__ = [
    "INSTANCE_STATES",
    "InstanceState",
    "InstanceStatus",
    "LocalSupervisor",
    "LogLine",
    "LogStream",
    "Probe",
    "ProcessSpec",
    "ensure_snapshot",
    "free_port",
]
