"""Deterministic client order ids on the exchange, derived from our own (``Order.client_order_id``).

Our ids are ``d-<16 hex of the decision>-<o | stop_loss | take_profit>``, so a retry of the same decision is
the same order. On the exchange they carry an account prefix (``tg`` by default) so that orders of ours can
be told from the account's other orders after a restart, and they are reversible:

- Binance (``newClientOrderId``, at most 36 of ``[.A-Za-z0-9:/_-]``) and Coinbase (``client_order_id``):
  ``<prefix>-<16 hex>-<o|sl|tp>``, e.g. ``tg-5f2c0e9d1a7b3c44-o``.
- Kraken (``cl_ord_id``: a UUID or at most 18 characters of free text): a UUID whose first 8 hex digits tag
  the prefix, then the 16 hex of the decision and a 4-digit kind code.
"""

from __future__ import annotations

import hashlib
import re

_OURS = re.compile(r"^d-([0-9a-f]{16})-(o|stop_loss|take_profit)$")
_SHORT = {"o": "o", "stop_loss": "sl", "take_profit": "tp"}
_CODE = {"o": "0001", "stop_loss": "0002", "take_profit": "0003"}
_PREFIX = re.compile(r"^[A-Za-z0-9]{1,8}$")
UUID_EXCHANGES = frozenset({"kraken"})


class ClientIds:
    def __init__(self, exchange_id: str, prefix: str = "tg") -> None:
        if not _PREFIX.match(prefix):
            raise ValueError(f"client id prefix {prefix!r} must be 1-8 letters or digits")
        self.exchange_id = exchange_id
        self.prefix = prefix
        self.uuid = exchange_id in UUID_EXCHANGES
        self._tag = hashlib.blake2b(prefix.encode(), digest_size=4).hexdigest()
        short = "|".join(_SHORT.values())
        self._text = re.compile(rf"^{re.escape(prefix)}-([0-9a-f]{{16}})-({short})$")
        codes = "|".join(_CODE.values())
        self._uuid = re.compile(
            rf"^{self._tag}-([0-9a-f]{{4}})-([0-9a-f]{{4}})-([0-9a-f]{{4}})-([0-9a-f]{{4}})({codes})0000$"
        )

    def encode(self, client_order_id: str) -> str:
        """The id sent to the exchange for our ``client_order_id``; ValueError when it is not one of ours."""
        m = _OURS.match(client_order_id)
        if m is None:
            raise ValueError(f"client order id {client_order_id!r} is not a tradegraph decision order id")
        digest, kind = m.groups()
        if not self.uuid:
            return f"{self.prefix}-{digest}-{_SHORT[kind]}"
        h = digest + _CODE[kind] + "0000"
        return f"{self._tag}-{h[0:4]}-{h[4:8]}-{h[8:12]}-{h[12:16]}{h[16:]}"

    def decode(self, exchange_client_id: object) -> str | None:
        """Our client order id for an exchange client id, or None when the id is not ours (other prefix)."""
        if not isinstance(exchange_client_id, str):
            return None
        if self.uuid:
            m = self._uuid.match(exchange_client_id.lower())
            if m is None:
                return None
            a, b, c, d, code = m.groups()
            kind = next(k for k, v in _CODE.items() if v == code)
            return f"d-{a}{b}{c}{d}-{kind}"
        t = self._text.match(exchange_client_id)
        if t is None:
            return None
        digest, short = t.groups()
        kind = next(k for k, v in _SHORT.items() if v == short)
        return f"d-{digest}-{kind}"


def decision_of(client_order_id: str) -> str:
    """The decision id inside one of our client order ids."""
    return client_order_id.rsplit("-", 1)[0]


def kind_of(client_order_id: str) -> str:
    return client_order_id.rsplit("-", 1)[1]
