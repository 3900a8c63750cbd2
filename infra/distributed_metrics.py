"""Prometheus metrics of `tradegraph worker` and `tradegraph schedule`: the session metrics plus jobs.

Worker: jobs consumed and redelivered, results (decided / duplicate / not_ready), rejected jobs by reason,
retries after a lost database or bus, time per job and time spent waiting for the previous candle.
Scheduler: jobs published and the watermark (open time of the last scheduled candle, in seconds).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from infra.metrics import SessionMetrics

JOB_BUCKETS = (1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1, 0.25, 1.0, 5.0, 30.0, 120.0)


class DistributedMetrics(SessionMetrics):
    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        self.jobs_consumed = Counter("tradegraph_jobs_consumed", "Decision jobs taken from the bus", registry=r)
        self.jobs_redelivered = Counter("tradegraph_jobs_redelivered", "Jobs the broker delivered again", registry=r)
        self.jobs = Counter("tradegraph_jobs", "Jobs handled, by result (decided, duplicate, not_ready)", ["result"],
                            registry=r)  # fmt: skip
        self.jobs_rejected = Counter("tradegraph_jobs_rejected", "Jobs dead-lettered, by reason", ["reason"],
                                     registry=r)  # fmt: skip
        self.job_retries = Counter("tradegraph_job_retries", "Job retries after a lost service", ["error"], registry=r)
        self.job_seconds = Histogram("tradegraph_job_seconds", "Time to handle one job", buckets=JOB_BUCKETS,
                                     registry=r)  # fmt: skip
        self.barrier_seconds = Histogram("tradegraph_job_barrier_wait_seconds",
                                         "Time a job waited for the previous candle to be decided",
                                         buckets=JOB_BUCKETS, registry=r)  # fmt: skip
        self.published = Counter("tradegraph_jobs_published", "Decision jobs published by the scheduler", registry=r)
        self.watermark_seconds = Gauge("tradegraph_schedule_watermark_seconds",
                                       "Open time of the last scheduled candle (Unix seconds)", registry=r)  # fmt: skip

    # --- graph.worker.WorkerMetrics -----------------------------------------------------------------------
    def job_consumed(self, redelivered: bool) -> None:
        self.jobs_consumed.inc()
        if redelivered:
            self.jobs_redelivered.inc()

    def job_done(self, result: str, seconds: float, waited_s: float) -> None:
        self.jobs.labels(result).inc()
        self.job_seconds.observe(seconds)
        if waited_s:
            self.barrier_seconds.observe(waited_s)

    def job_rejected(self, reason: str) -> None:
        self.jobs_rejected.labels(reason).inc()

    def job_retried(self, reason: str) -> None:
        self.job_retries.labels(reason).inc()

    # --- infra.job_scheduler.SchedulerMetrics -----------------------------------------------------------------
    def jobs_published(self, n: int) -> None:
        self.published.inc(n)

    def watermark(self, candle_time: int) -> None:
        self.watermark_seconds.set(candle_time / 1000)
