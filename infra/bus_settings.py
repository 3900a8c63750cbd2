"""Settings of the bus and of distributed runs (the ``bus`` section; the bus URL itself is ``bus_url``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BusSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange: str = Field(default="tradegraph", min_length=1, description="topic exchange; queues are named after it")
    prefetch: int = Field(default=1, ge=1, description="unacked jobs a worker holds (1 keeps jobs with idle workers)")
    retry_seconds: float = Field(default=120.0, gt=0, description="how long a job retries a lost database or bus")
    barrier_wait_s: float = Field(default=10.0, gt=0, description="wait for the previous candle before requeueing")
    max_catch_up: int = Field(default=24, ge=1, description="candles a live scheduler catches up after downtime")
    close_delay_s: float = Field(default=5.0, ge=0, description="wait after a candle closes before scheduling it")
    connect_timeout: float = Field(default=10.0, gt=0)

    @property
    def jobs_queue(self) -> str:
        return f"{self.exchange}.jobs"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.exchange}.jobs.dead"
