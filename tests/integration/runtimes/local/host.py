"""A supervisor in its own process, for orphan tests: ``python host.py STATE_DIR CWD``.

Starts one ``app.py family`` instance, prints ``{"pid": N, "grandchild": M}`` once it is ready, then
blocks on stdin until killed.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from tests.integration.runtimes.local.harness import LogCollector, app_spec, where
from yunzhou.runtimes.local import LocalSupervisor


def main() -> None:
    state_dir, cwd = Path(sys.argv[1]), Path(sys.argv[2])
    logs = LogCollector()
    supervisor = LocalSupervisor(state_dir, log_sink=logs)
    supervisor.start()
    supervisor.ensure(app_spec("orphan", "family", cwd=cwd))
    if not supervisor.wait_for(where("orphan", lambda s: s.ready), 20):
        sys.exit("instance did not become ready")
    status = supervisor.statuses()[0]
    line = logs.wait(lambda ls: any("grandchild" in x.fields for x in ls))
    grandchild = next(x.fields["grandchild"] for x in line if "grandchild" in x.fields)
    print(json.dumps({"pid": status.pid, "grandchild": grandchild}), flush=True)
    threading.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    main()
