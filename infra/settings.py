"""Configuration: command-line flags > TRADEGRAPH_* environment > .env > config file (TOML/JSON) > defaults.

Nested sections use ``__`` in the environment, e.g. TRADEGRAPH_LIMITS__MAX_DRAWDOWN=0.1.
"""

from __future__ import annotations

import json
import re
import tomllib
from contextvars import ContextVar
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from infra.bus_settings import BusSettings
from infra.chat_settings import ChatSettings
from infra.feed_settings import FeedSettings
from infra.influx_settings import FlatInfluxEnvSource, InfluxSettings, is_flat_name
from infra.live_settings import LiveSettings
from infra.redact import redact_url
from tools.errors import ConfigError
from tools.llm_config import LLMSettings
from tools.paper_broker import PaperBrokerConfig
from tools.risk_gate import RiskLimits
from tools.risk_sizing import RiskConfig
from tools.signal_fusion import FusionConfig
from tools.technical_analysis import TAConfig
from tools.timeframes import timeframe_ms

_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("tradegraph_config_file", default=None)


class _FileSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        try:
            text = self.path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read config file {self.path}: {exc.strerror}") from None
        try:
            data = json.loads(text) if self.path.suffix == ".json" else tomllib.loads(text.decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {self.path} is not valid {self.path.suffix or 'TOML'}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {self.path} must hold a table of settings")
        return data


class _DotenvForTradegraph(PydanticBaseSettingsSource):
    """The ``.env`` source minus what is not ours: variables without the TRADEGRAPH_ prefix (the same file
    configures docker compose: POSTGRES_PASSWORD, ...) and the flat influx names (read by their own source).
    An unknown TRADEGRAPH_ name is still an error."""

    def __init__(self, inner: PydanticBaseSettingsSource) -> None:
        super().__init__(inner.settings_cls)
        self.inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields
        return {k: v for k, v in self.inner().items()
                if k in fields or (k.lower().startswith("tradegraph_") and not is_flat_name(k))}  # fmt: skip


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRADEGRAPH_", env_nested_delimiter="__", env_file=".env", extra="forbid", frozen=True
    )

    data_dir: Path | None = Field(default=None, description="recorded candles; default: the bundled sample")
    exchange: str = "binance"
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["BTC/USDT", "ETH/USDT"])
    timeframe: str = "1h"
    start: date | None = None
    end: date | None = Field(default=None, description="inclusive day")
    journal: str = Field(default="tradegraph.sqlite", description="SQLite path or postgresql:// URL")
    bus_url: str = Field(default="memory://", description="memory:// (in-process) or amqp://user:pass@host/vhost")
    checkpoint: str | None = Field(
        default=None, description="durable runs: LangGraph checkpoint store, SQLite path or postgresql:// URL"
    )
    reasoner: Literal["rules", "llm", "local", "crew", "replay"] = "rules"
    window: int = Field(default=300, ge=50, le=5000, description="candles per snapshot")
    progress: bool = True
    ta: TAConfig = Field(default_factory=TAConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    limits: RiskLimits = Field(default_factory=RiskLimits)
    paper: PaperBrokerConfig = Field(default_factory=PaperBrokerConfig)
    bus: BusSettings = Field(default_factory=BusSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)
    feed: FeedSettings = Field(default_factory=FeedSettings)
    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    metrics_host: str = Field(default="127.0.0.1", description="address --metrics-port binds; 0.0.0.0 in containers")

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [s.strip().upper() for s in value.split(",") if s.strip()]
        return value

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one symbol is needed")
        for symbol in value:
            base, sep, quote = symbol.partition("/")
            if not (sep and base and quote and "/" not in quote):
                raise ValueError(f"{symbol!r} is not BASE/QUOTE, e.g. BTC/USDT")
        return list(dict.fromkeys(value))

    @field_validator("journal", mode="before")
    @classmethod
    def _journal_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, Path) else value

    @field_validator("timeframe")
    @classmethod
    def _check_timeframe(cls, value: str) -> str:
        timeframe_ms(value)
        return value

    @model_validator(mode="after")
    def _window_holds_the_indicators(self) -> Settings:
        if self.window < self.ta.min_history:
            raise ValueError(
                f"window {self.window} is shorter than the {self.ta.min_history} candles the indicators need"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            FlatInfluxEnvSource(settings_cls),
            _DotenvForTradegraph(dotenv_settings),
        ]
        path = _CONFIG_FILE.get()
        if path is not None:
            sources.append(_FileSource(settings_cls, path))
        return tuple(sources)


_KEY_NAMES = {"exchange_api_key", "exchange_api_secret", "exchange_api_password"}


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from every source; ``overrides`` (the CLI flags that were given) win."""
    token = _CONFIG_FILE.set(config_file)
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        if where.lower().removeprefix("tradegraph_") in _KEY_NAMES:
            raise ConfigError(
                f"API keys are read from the environment only, never from files: remove {where} from .env or --config"
            ) from None
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"invalid setting {where}: {message}") from None
    finally:
        _CONFIG_FILE.reset(token)
    if settings.start and settings.end and settings.end < settings.start:
        raise ConfigError(f"end {settings.end} is before start {settings.start}")
    return settings


def redacted_config(settings: Settings) -> dict[str, Any]:
    """The settings as journaled: secret-named keys are masked, and so is any password or token in a URL."""
    redacted: dict[str, Any] = _redact_keys(settings.model_dump(mode="json"))
    return redacted


_SECRET_WORDS = {"key", "apikey", "secret", "password", "passwd", "token", "credentials"}


def _is_secret_name(name: str) -> bool:
    """api_key, password, access_token: yes; max_output_tokens, keywords: no (whole words only)."""
    return any(word in _SECRET_WORDS for word in name.lower().replace("-", "_").split("_"))


def _redact_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("***" if v is not None else None) if _is_secret_name(k) else _redact_keys(v)
                for k, v in value.items()}  # fmt: skip
    if isinstance(value, list):
        return [_redact_keys(v) for v in value]
    if isinstance(value, str) and _URL.match(value):
        return redact_url(value)
    return value
