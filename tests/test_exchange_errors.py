"""What each of ccxt's exceptions means for an order (subclasses before their bases), the backoff, the
retries of the venue on the wire (temporary errors retried, permanent ones not), and secrets redacted."""

from __future__ import annotations

import ccxt
import pytest

from tests.ccxt_rig import SYMBOL, make_rig
from tests.exchange_wire import EXCHANGES, Fault
from tools.ccxt_broker import CcxtBrokerConfig
from tools.errors import ExchangePermanentError, ExchangeTemporaryError
from tools.exchange_errors import Backoff, Failure, Redactor, classify, describe, is_temporary, retry_after

CASES = [
    (ccxt.OrderNotFound, Failure.NOT_FOUND),  # an InvalidOrder: must not be taken for a permanent refusal
    (ccxt.DuplicateOrderId, Failure.DUPLICATE),  # an InvalidOrder too
    (ccxt.RateLimitExceeded, Failure.RATE_LIMITED),  # a NetworkError, not a DDoSProtection
    (ccxt.DDoSProtection, Failure.RATE_LIMITED),
    (ccxt.RequestTimeout, Failure.UNKNOWN_OUTCOME),
    (ccxt.ExchangeNotAvailable, Failure.UNKNOWN_OUTCOME),
    (ccxt.OnMaintenance, Failure.UNKNOWN_OUTCOME),
    (ccxt.InvalidNonce, Failure.UNKNOWN_OUTCOME),
    (ccxt.NetworkError, Failure.UNKNOWN_OUTCOME),
    (ccxt.BadResponse, Failure.UNKNOWN_OUTCOME),
    (ccxt.NullResponse, Failure.UNKNOWN_OUTCOME),
    (ccxt.CancelPending, Failure.UNKNOWN_OUTCOME),
    (ccxt.InsufficientFunds, Failure.PERMANENT),
    (ccxt.InvalidOrder, Failure.PERMANENT),
    (ccxt.BadSymbol, Failure.PERMANENT),
    (ccxt.BadRequest, Failure.PERMANENT),
    (ccxt.AuthenticationError, Failure.PERMANENT),
    (ccxt.PermissionDenied, Failure.PERMANENT),
    (ccxt.AccountSuspended, Failure.PERMANENT),
    (ccxt.NotSupported, Failure.PERMANENT),
    (ccxt.ExchangeError, Failure.PERMANENT),
]


@pytest.mark.parametrize(("exc", "failure"), CASES, ids=[c[0].__name__ for c in CASES])
def test_every_ccxt_exception_has_its_meaning(exc: type[Exception], failure: Failure) -> None:
    assert classify(exc("x")) is failure


def test_the_hierarchy_the_order_of_checks_relies_on() -> None:
    assert issubclass(ccxt.OrderNotFound, ccxt.InvalidOrder) and issubclass(ccxt.DuplicateOrderId, ccxt.InvalidOrder)
    assert issubclass(ccxt.RequestTimeout, ccxt.NetworkError) and issubclass(ccxt.RateLimitExceeded, ccxt.NetworkError)
    assert not issubclass(ccxt.RateLimitExceeded, ccxt.DDoSProtection)
    assert not issubclass(ccxt.BadResponse, ccxt.NetworkError)
    assert is_temporary(Failure.RATE_LIMITED) and not is_temporary(Failure.PERMANENT)


def test_backoff_grows_is_capped_and_waits_longer_after_a_rate_limit() -> None:
    b = Backoff(attempts=6, base_s=0.5, cap_s=10.0, rate_limit_factor=4.0)
    waits = [b.delay(n, Failure.UNKNOWN_OUTCOME) for n in range(1, 7)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert b.delay(1, Failure.RATE_LIMITED) == 2.0
    assert b.delay(1, Failure.UNKNOWN_OUTCOME, retry_after_s=3.0) == 3.0  # the exchange's Retry-After wins
    assert b.delay(1, Failure.UNKNOWN_OUTCOME, retry_after_s=300.0) == 10.0  # but never past the cap
    jittered = Backoff(jitter=0.5).delay(1, Failure.UNKNOWN_OUTCOME)
    assert 0.5 <= jittered <= 0.75


def test_retry_after_header() -> None:
    assert retry_after({"Retry-After": "2"}) == 2.0 and retry_after({"retry-after": "x"}) is None
    assert retry_after(None) is None and retry_after({}) is None


def test_secrets_and_signatures_never_appear_in_messages() -> None:
    redact = Redactor(["sk-very-secret-value", "key-123456", None, "ab"])
    text = "GET https://api.x.com/o?a=1&signature=deadbeef42&x=2 API-Key: key-123456 secret sk-very-secret-value"
    clean = redact(text)
    assert "deadbeef42" not in clean and "key-123456" not in clean and "sk-very-secret-value" not in clean
    assert "signature=***" in clean and "a=1" in clean
    assert describe(ccxt.NetworkError("boom  sk-very-secret-value\nline"), redact) == "NetworkError: boom *** line"
    assert describe(ccxt.NetworkError("")) == "NetworkError"
    assert len(describe(ccxt.NetworkError("y" * 1000))) < 320


@pytest.mark.parametrize("exchange_id", EXCHANGES)
def test_a_server_error_burst_is_retried_then_reported_as_temporary(exchange_id: str) -> None:
    rig = make_rig(exchange_id, CcxtBrokerConfig(retry_attempts=3))
    broker = rig.broker()
    rig.fake.responder.inject(Fault.SERVER_ERROR, times=2)
    assert broker.venue.balances()  # two 503s, then the answer
    assert len(broker.venue.waits) == 2
    rig.fake.responder.inject(Fault.SERVER_ERROR, times=None)
    with pytest.raises(ExchangeTemporaryError, match="failed 3 times"):
        broker.venue.balances()
    rig.fake.responder.clear_faults()


@pytest.mark.parametrize("exchange_id", EXCHANGES)
def test_malformed_and_truncated_answers_are_errors_not_empty_results(exchange_id: str) -> None:
    rig = make_rig(exchange_id, CcxtBrokerConfig(retry_attempts=2))
    broker = rig.broker()
    for fault in (Fault.MALFORMED, Fault.TRUNCATED):
        rig.fake.responder.inject(fault, times=None)
        with pytest.raises(ExchangeTemporaryError, match="not JSON"):
            broker.venue.balances()  # ccxt alone would parse these as an empty balance
        rig.fake.responder.clear_faults()


@pytest.mark.parametrize("exchange_id", EXCHANGES)
def test_wrong_keys_are_refused_once_not_retried(exchange_id: str) -> None:
    rig = make_rig(exchange_id)
    broker = rig.broker()
    broker.exchange.secret = broker.exchange.secret[:-4] + "AAAA"  # a wrong secret: bad signatures
    with pytest.raises(ExchangePermanentError) as caught:
        broker.venue.balances()
    assert not broker.venue.waits
    expected = {"binance": "Signature for this request is not valid", "coinbase": "AuthenticationError",
                "kraken": "EAPI:Invalid signature"}  # fmt: skip
    assert expected[exchange_id] in str(caught.value)
    assert broker.exchange.secret not in str(caught.value)


def test_truncated_create_answer_is_looked_up_not_sent_twice() -> None:
    rig = make_rig("binance")
    broker = rig.broker()
    from tests.ccxt_rig import order
    from tests.exchange_wire.orders import CREATE_PATH

    rig.fake.responder.inject(Fault.TRUNCATED, times=1, path=CREATE_PATH["binance"], method="POST")
    placed = broker.submit(order(1, 0.01, rig.mark()))
    assert placed.exchange_order_id and rig.creates() == 1 and len(rig.on_exchange(placed.client_order_id)) == 1
    assert broker.portfolio_view().pending == {SYMBOL: pytest.approx(0.01)}
