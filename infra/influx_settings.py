"""Settings of the optional InfluxDB time-series sink (the `influx` section).

Set flat as ``TRADEGRAPH_INFLUX_URL``, ``TRADEGRAPH_INFLUX_ORG``, ``TRADEGRAPH_INFLUX_BUCKET``,
``TRADEGRAPH_INFLUX_TOKEN`` (environment or ``.env``), nested as ``TRADEGRAPH_INFLUX__URL``, as an
``[influx]`` table in the config file, or ``tradegraph run --influx URL``. No URL: no sink.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource


class InfluxSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str | None = Field(default=None, description="InfluxDB v2 server, e.g. http://127.0.0.1:8086; unset = no sink")
    org: str = "tradegraph"
    bucket: str = "tradegraph"
    token: SecretStr | None = Field(default=None, description="API token (sent as `Authorization: Token ...`)")
    batch_size: int = Field(default=1000, ge=1, le=100_000, description="queued writes (one per decision) per request")
    flush_interval_ms: int = Field(default=1000, ge=10, description="a partial batch is written after this long")
    max_retries: int = Field(default=3, ge=0, le=20, description="retries of a failed batch (5xx, 429, network)")
    max_retry_time_ms: int = Field(default=30_000, ge=0, description="give up on a batch after this long")
    timeout_ms: int = Field(default=10_000, ge=100, description="HTTP timeout of one request")
    depth_levels: int = Field(default=10, ge=0, le=1000, description="order-book levels written per side")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError("is not a valid http(s) URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8086")
        return value

    @property
    def enabled(self) -> bool:
        return self.url is not None

    @property
    def close_wait_ms(self) -> int:
        """How long closing may wait for the last batches: every retry of a batch plus its last request."""
        return self.max_retry_time_ms + 2 * self.timeout_ms + 5_000


FLAT_PREFIX = "TRADEGRAPH_INFLUX_"


class FlatInfluxEnvSource(PydanticBaseSettingsSource):
    """Reads ``TRADEGRAPH_INFLUX_<FIELD>`` (one underscore) from the environment, then from ``.env``.

    Sits just after the nested environment source, so the flat names win over ``.env`` and the config file
    and lose to command-line flags and to ``TRADEGRAPH_INFLUX__<FIELD>``.
    """

    def __init__(self, settings_cls: type[BaseSettings], env_file: Path | None = Path(".env")) -> None:
        super().__init__(settings_cls)
        self.env_file = env_file

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if self.env_file is not None and self.env_file.is_file():
            values.update(_section_values(dotenv_values(self.env_file)))
        values.update(_section_values(os.environ))
        return {"influx": values} if values else {}


def is_flat_name(key: str) -> bool:
    upper = key.upper()
    return upper.startswith(FLAT_PREFIX) and not upper.startswith(FLAT_PREFIX + "_")


def _section_values(env: Any) -> dict[str, Any]:
    fields = InfluxSettings.model_fields
    out: dict[str, Any] = {}
    for key, value in env.items():
        if value is None or not is_flat_name(key):
            continue
        name = key.upper().removeprefix(FLAT_PREFIX).lower()
        if name in fields:
            out[name] = value
    return out
