"""A pod as an instance status: a crashed container's terminated message (its last log lines, from
terminationMessagePolicy FallbackToLogsOnError) becomes the instance's stderr lines."""

from __future__ import annotations

from lightkube.models.core_v1 import (
    ContainerState,
    ContainerStateTerminated,
    ContainerStateWaiting,
    ContainerStatus,
    PodStatus,
)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Pod

from yunzhou.runtimes.kubernetes.runtime import _pod_status


def test_a_crash_looping_pod_carries_its_last_log_lines() -> None:
    crashed = ContainerStatus(
        name="web", image="registry.test/orders:1", imageID="", ready=False, restartCount=4,
        state=ContainerState(waiting=ContainerStateWaiting(reason="CrashLoopBackOff")),
        lastState=ContainerState(terminated=ContainerStateTerminated(
            exitCode=1, reason="Error", message="starting\nboom: missing DATABASE_URL\n")),
    )  # fmt: skip
    pod = Pod(
        metadata=ObjectMeta(name="orders-7d9f-abcde", labels={"yunzhou.io/release": "2"}),
        status=PodStatus(phase="Running", containerStatuses=[crashed]),
    )
    status = _pod_status(pod, "shop/dev/orders")
    assert (status.state, status.restarts, status.last_exit) == ("crashloop", 4, "exit 1")
    assert status.stderr_tail == ("starting", "boom: missing DATABASE_URL")
    assert status.last_probe is None  # not read on a cluster yet (Events)
