"""Faults in distributed runs, with real worker processes: PostgreSQL restarted mid-run (a crash-like stop),
RabbitMQ restarted mid-run, a worker SIGKILLed between placing an order and acking its job, jobs delivered
twice. After each: every key decided exactly once, orders unique by client order id, no limit broken, the
same keys and market evidence as the single-process replay, every decision's messages confirmed.

The restarted servers are private instances (tests.private_services); the rest uses the machine's servers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from infra.settings import Settings
from tests.distributed_support import (
    Stack,
    WorkerProcess,
    amqp_available,
    check_against_reference,
    check_limits,
    day,
    decided,
    pg_connect,
    reference_run,
    schedule_replay,
    wait_until,
)
from tests.private_services import PrivatePostgres, PrivateRabbit

SIGKILL_EXIT = -9


def faulted_run(
    stack: Stack,
    settings: Settings,
    fault: Callable[[list[WorkerProcess]], None],
    *,
    fault_at: float = 1 / 3,
    worker_env: list[dict[str, str] | None] | None = None,
) -> list[WorkerProcess]:
    """Publish a replay, start the workers, inject ``fault`` once a share of the keys is decided, finish the run
    and check it against the single-process replay."""
    total = schedule_replay(settings, "dist")
    at_fault: list[int] = []
    envs = worker_env or [None, None]
    workers = [WorkerProcess(stack, f"w{i}", env) for i, env in enumerate(envs)]

    def logs() -> str:
        return " | ".join(f"{w.name}: {w.output()[-1500:]}" for w in workers)

    try:
        wait_until(f"{fault_at:.0%} of {total} decisions", lambda: decided(stack.pg_url, "dist") >= total * fault_at,
                   detail=logs)  # fmt: skip
        at_fault.append(decided(stack.pg_url, "dist"))
        fault(workers)
        wait_until(f"all {total} decisions after the fault", lambda: decided(stack.pg_url, "dist") >= total,
                   detail=logs)  # fmt: skip
        wait_until("every decision's messages confirmed", lambda: _unpublished(stack.pg_url) == 0, detail=logs)
    finally:
        codes = [w.stop() for w in workers]
    assert all(code in (0, SIGKILL_EXIT) for code in codes), logs()
    assert at_fault[0] < total  # the fault hit a run in progress
    for w in workers:  # services log JSON lines only, through the fault too (plus the start and end lines)
        stray = [line for line in w.output().splitlines() if line and not line.startswith(("{", "worker "))]
        assert not stray, stray[:5]
    reference_run(settings, "ref")
    checked = check_against_reference(stack.pg_url, "dist", "ref", total)
    check_limits(checked["rows"], settings)
    return workers


def _unpublished(pg_url: str) -> int:
    with pg_connect(pg_url) as c:
        row = c.execute("SELECT count(*) FROM decisions d WHERE run_id = 'dist' AND NOT EXISTS "
                        "(SELECT 1 FROM bus_published p WHERE p.decision_id = d.id)").fetchone()  # fmt: skip
    return int(row[0]) if row else -1


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.cleanup()


@pytest.fixture
def private_rabbit() -> Iterator[PrivateRabbit]:
    rabbit = PrivateRabbit()
    try:
        rabbit.start()
        yield rabbit
    finally:
        rabbit.cleanup()


def test_postgres_crash_restart_mid_run_loses_no_decision_and_duplicates_no_order(private_pg: PrivatePostgres) -> None:
    amqp_available()
    stack = Stack(private_pg.url)
    try:
        settings = stack.settings(start=day("2024-01-01"), end=day("2024-01-08"))
        workers = faulted_run(stack, settings, lambda _w: private_pg.crash_restart(), fault_at=0.25)
    finally:
        stack.cleanup()
    assert any("journal at" in w.output() and "unavailable" in w.output() for w in workers)  # they did see it


def test_rabbitmq_restart_mid_run_loses_no_decision_and_duplicates_no_order(
    private_rabbit: PrivateRabbit, pg_url: str
) -> None:
    stack = Stack(pg_url, amqp_url=private_rabbit.url)
    settings = stack.settings(start=day("2024-01-01"), end=day("2024-01-08"))
    workers = faulted_run(stack, settings, lambda _w: private_rabbit.restart(), fault_at=0.25)
    assert any("bus connection" in w.output() and "restored" in w.output() for w in workers)
    stack.cleanup()


@pytest.mark.parametrize("point", ["worker:order-committed", "worker:order-published"])
def test_worker_killed_between_order_and_ack_the_job_is_finished_once(pg_url: str, point: str) -> None:
    amqp_available()
    stack = Stack(pg_url)
    settings = stack.settings(start=day("2024-01-01"), end=day("2024-01-04"))
    replacement: list[WorkerProcess] = []

    def kill_then_replace(workers: list[WorkerProcess]) -> None:
        # w0 SIGKILLs itself at its first order; a replacement worker joins once it is gone
        wait_until("the worker to die at its crash point", lambda: workers[0].proc.poll() is not None)
        replacement.append(WorkerProcess(stack, "w2"))
        workers.append(replacement[0])
        wait_until("the replacement worker to start", lambda: "jobs from" in replacement[0].output())

    try:
        workers = faulted_run(stack, settings, kill_then_replace, fault_at=0.0,
                              worker_env=[stack.env(TRADEGRAPH_CRASH_AT=point), None])  # fmt: skip
    finally:
        stack.cleanup()
    assert workers[0].proc.returncode == SIGKILL_EXIT
    killed_at = [line for line in workers[0].output().splitlines() if "job decided: ordered" in line]
    if point == "worker:order-published":  # it logged the ordered decision, then died before acking it
        assert killed_at
    else:  # it died before logging it
        assert not killed_at
