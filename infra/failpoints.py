"""Named crash points for the fault tests: ``TRADEGRAPH_FAILPOINTS=after-order-commit`` makes the process
SIGKILL itself when it reaches that point, so a test can kill a worker at an exact step (between committing
an order and publishing, or between publishing and acking its job) instead of racing a timer. Unset, a
failpoint is one dictionary lookup.

Points: ``after-order-commit`` (a decision with an order is committed, nothing published or acked yet),
``after-order-publish`` (that decision's messages are confirmed, the job is not acked yet).
"""

from __future__ import annotations

import os
import signal

_ACTIVE = frozenset(p.strip() for p in os.environ.get("TRADEGRAPH_FAILPOINTS", "").split(",") if p.strip())


def hit(name: str) -> None:
    if name in _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
