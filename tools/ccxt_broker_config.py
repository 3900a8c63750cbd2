"""Settings of the ccxt broker and the credentials it gets, kept apart from ccxt (importing ccxt is slow)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

VenueMode = Literal["sandbox", "demo", "live"]


class CcxtBrokerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    order_type: Literal["limit", "market"] = "limit"
    limit_offset_bps: float = Field(default=20.0, ge=0, le=1000, description="limit price through the decision price")
    order_ttl_candles: int = Field(default=3, ge=1, description="cancel what is unfilled after this many candles")
    retry_attempts: int = Field(default=5, ge=1, le=20)
    retry_base_delay_s: float = Field(default=0.5, ge=0)
    retry_max_delay_s: float = Field(default=30.0, ge=0)
    client_id_prefix: str = Field(default="tg", pattern=r"^[A-Za-z0-9]{1,8}$")
    reconcile_lookback_hours: float = Field(default=72.0, gt=0, description="adopt our orders this recent")
    request_timeout_ms: int = Field(default=10_000, ge=1000)


class ExchangeCredentials(BaseModel):
    """API keys, only ever from the environment. ``repr`` and ``str`` show no secret."""

    model_config = ConfigDict(frozen=True)

    api_key: SecretStr
    secret: SecretStr
    password: SecretStr | None = None

    def ccxt_config(self) -> dict[str, str]:
        config = {"apiKey": self.api_key.get_secret_value(), "secret": self.secret.get_secret_value()}
        if self.password is not None:
            config["password"] = self.password.get_secret_value()
        return config

    def values(self) -> list[str]:
        return list(self.ccxt_config().values())
