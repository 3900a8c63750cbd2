"""The `feed` settings section: where market data comes from and, for live data, how it is scheduled."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.ccxt_feed_config import CcxtFeedConfig


class FeedSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Literal["recorded", "ccxt"] = Field(
        default="recorded", description="recorded files (replay) or live exchange data through ccxt"
    )
    settle_delay_s: float = Field(
        default=2.0, ge=0, le=300, description="scheduled runs decide this long after each candle close"
    )
    max_catch_up: int = Field(
        default=3, ge=1, le=1000, description="after downtime, decide at most this many missed closes"
    )
    ccxt: CcxtFeedConfig = Field(default_factory=CcxtFeedConfig)
