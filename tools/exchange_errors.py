"""What a ccxt exception means for an order, the retry backoff, and secrets kept out of every message.

ccxt's exception tree (4.5) decides the order of the checks in ``classify``: subclasses must be tested
before their bases.

- ``OrderNotFound`` and ``DuplicateOrderId`` are subclasses of ``InvalidOrder`` (itself an ``ExchangeError``).
- ``RequestTimeout``, ``RateLimitExceeded``, ``DDoSProtection``, ``ExchangeNotAvailable`` (and its
  ``OnMaintenance``) and ``InvalidNonce`` are all subclasses of ``NetworkError``; ``RateLimitExceeded`` is not
  a ``DDoSProtection``.
- ``BadResponse`` (a body that cannot be read) and ``CancelPending`` are ``OperationFailed`` but not network
  errors; ``BadSymbol`` is a ``BadRequest``; ``PermissionDenied`` and ``AccountSuspended`` are
  ``AuthenticationError``s; everything the exchange refused is an ``ExchangeError``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import ccxt


class Failure(StrEnum):
    NOT_FOUND = "not_found"
    """The exchange does not know the order."""
    DUPLICATE = "duplicate"
    """The exchange already has an order with that client order id."""
    RATE_LIMITED = "rate_limited"
    """Refused for the request rate: the request was not processed; retry after a longer wait."""
    UNKNOWN_OUTCOME = "unknown_outcome"
    """Timeout, connection trouble, unavailable exchange, unreadable answer: the request may or may not have
    been processed. A create is looked up by its client order id before it is sent again."""
    PERMANENT = "permanent"
    """Refused for a reason a retry cannot fix (funds, order parameters, symbol, keys, unsupported)."""


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, ccxt.OrderNotFound):  # before InvalidOrder, its base
        return Failure.NOT_FOUND
    if isinstance(exc, ccxt.DuplicateOrderId):  # before InvalidOrder, its base
        return Failure.DUPLICATE
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):  # before NetworkError, their base
        return Failure.RATE_LIMITED
    if isinstance(exc, ccxt.NetworkError | ccxt.BadResponse | ccxt.CancelPending):
        return Failure.UNKNOWN_OUTCOME  # RequestTimeout, ExchangeNotAvailable, OnMaintenance, InvalidNonce, ...
    return Failure.PERMANENT  # InsufficientFunds, InvalidOrder, BadSymbol, AuthenticationError, ExchangeError


def is_temporary(failure: Failure) -> bool:
    return failure in (Failure.RATE_LIMITED, Failure.UNKNOWN_OUTCOME)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``base * 2^(attempt-1)`` capped at ``cap``; a rate limit waits ``rate_limit_factor``
    times longer and at least the exchange's Retry-After. ``jitter`` stretches each wait at random."""

    attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 30.0
    rate_limit_factor: float = 4.0
    jitter: float = 0.0

    def delay(self, attempt: int, failure: Failure, retry_after_s: float | None = None) -> float:
        delay = self.base_s * 2.0 ** (attempt - 1)
        if failure is Failure.RATE_LIMITED:
            delay *= self.rate_limit_factor
        delay = min(self.cap_s, delay)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.cap_s))
        return delay * (1 + random.uniform(0, self.jitter)) if self.jitter else delay


def retry_after(headers: object) -> float | None:
    """The Retry-After of the last response (seconds), when the exchange sent one."""
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if str(key).lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


_SIGNED = re.compile(r"(?i)(signature|api[-_]?sign|api[-_]?key|cb-access-sign|cb-access-key)([=:]\s*)[^&\s,'\"}]+")


class Redactor:
    """Removes the account's secrets (and any request signature) from text before it is logged, journaled or
    shown. Built once per broker from the credentials it holds."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _SIGNED.sub(r"\1\2***", text)


def describe(exc: BaseException, redact: Redactor | None = None, limit: int = 300) -> str:
    """One line: the exception's class and its message, secrets removed."""
    text = " ".join(str(exc).split())
    if redact is not None:
        text = redact(text)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
