"""Settings of the ccxt feed (kept apart from the feed so that reading settings does not import ccxt)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CcxtFeedConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    websocket: bool = Field(default=True, description="stream candles and books with ccxt.pro where available")
    order_book: bool = Field(default=True, description="add the order book to snapshots (paper fills walk it)")
    book_depth: int = Field(default=50, ge=1, le=1000)
    ws_grace_s: float = Field(default=3.0, ge=0, description="wait for the stream to confirm a close")
    book_max_age_s: float = Field(default=10.0, gt=0, description="older streamed books are refetched")
    retry_attempts: int = Field(default=5, ge=1)
    retry_base_delay_s: float = Field(default=0.5, ge=0)
    retry_max_delay_s: float = Field(default=30.0, ge=0)
    reconnect_base_delay_s: float = Field(default=1.0, ge=0)
    reconnect_max_delay_s: float = Field(default=60.0, ge=0)
    stream_stall_s: float = Field(
        default=60.0, gt=0, description="a stream silent this long is treated as dropped and reconnected"
    )
    request_timeout_ms: int = Field(default=10_000, ge=100, description="ccxt's per-request timeout")
