"""The `live` settings section: execution through ccxt (order handling knobs) and the live-trading switch.

``live.enabled`` is one of the three things real orders need (with the --live flag and API keys in the
environment); it is never set by a flag. The other fields tune the ccxt broker in every exchange mode
(sandbox, demo and live).
"""

from __future__ import annotations

from pydantic import Field

from tools.ccxt_broker_config import CcxtBrokerConfig


class LiveSettings(CcxtBrokerConfig):
    enabled: bool = Field(
        default=False,
        description="allow real orders with real funds (also needs --live and API keys in the environment)",
    )
