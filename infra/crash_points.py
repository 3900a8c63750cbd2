"""Named crash points: the fault-injection hook the durable-execution tests use to kill a run at an exact place.

``TRADEGRAPH_CRASH_AT=NAME`` or ``NAME@N`` makes the process SIGKILL itself the N-th time (default 1) it
passes ``crash_point(NAME)``. Unset (always, outside those tests), a crash point costs one comparison.

Points passed by a run:
- ``enter:NODE`` / ``leave:NODE``: before a graph node runs / after it ran, before LangGraph records its result
  (``leave:execute`` is inside execute, after the broker took the order);
- ``step``: between decisions, before a snapshot is settled and decided (not for steps replayed on resume);
- ``committed``: right after a durable run committed a decision and everything before it to the journal;
- ``replayed``: on resume, after one decision was replayed from the journal.
- ``worker:order-committed``: a distributed worker committed a decision with an order, nothing published or
  acked yet; ``worker:order-published``: its messages are confirmed, the job is not acked yet.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "TRADEGRAPH_CRASH_AT"


def _parse(spec: str | None) -> tuple[str, int] | None:
    if not spec:
        return None
    name, _, count = spec.partition("@")
    return name, int(count) if count else 1


_TARGET = _parse(os.environ.get(ENV))
_hits: Counter[str] = Counter()


def crash_point(name: str) -> None:
    if _TARGET is None or name != _TARGET[0]:
        return
    _hits[name] += 1
    if _hits[name] == _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)
