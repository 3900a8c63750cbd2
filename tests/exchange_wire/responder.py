"""A fake exchange behind a real ccxt instance: ``fetch`` replaced, everything above it (ccxt's request
building, signing, throttling, parsers and error mapping) left as it is.

``Responder.install(exchange)`` swaps the instance's ``fetch`` for one that routes the request to a handler
and then does what ccxt's own ``fetch`` does with an HTTP response: ``on_rest_response``, ``parse_json``,
``handle_errors`` (the exchange's own error-body mapping), ``handle_http_status_code`` (the status mapping)
and the return of JSON or text. Faults that the real transport raises itself (a timeout, a refused
connection) are raised as the ccxt exception the transport raises (``RequestTimeout``; ``ExchangeNotAvailable``
in async ccxt and ``NetworkError`` in sync ccxt). Works for sync (``ccxt.binance()``) and async / pro
(``ccxt.async_support``, ``ccxt.pro``) instances.
"""

from __future__ import annotations

import inspect
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ccxt

JSON_HEADERS = {"Content-Type": "application/json;charset=UTF-8"}


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    host: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str | None

    def param(self, name: str, default: str | None = None) -> str | None:
        """A query-string parameter, or for a form/JSON body a body field."""
        if name in self.query:
            return self.query[name]
        if self.body:
            try:
                data = json.loads(self.body)
            except ValueError:
                data = dict(parse_qsl(self.body))
            if isinstance(data, dict) and name in data:
                return str(data[name])
        return default


@dataclass
class Reply:
    """An HTTP response. ``body`` may be JSON-able data (serialized here), text or bytes."""

    body: Any
    status: int = 200
    reason: str = "OK"
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON_HEADERS))

    def text(self) -> str:
        if isinstance(self.body, bytes):
            return self.body.decode("utf-8", errors="replace")
        if isinstance(self.body, str):
            return self.body
        return json.dumps(self.body, separators=(",", ":"))


Handler = Callable[[Request], "Reply | dict[str, Any] | list[Any] | str"]


class Fault(Enum):
    RATE_LIMIT = "rate_limit"
    """The exchange's own rate-limit answer (Binance and Coinbase: HTTP 429 with their body; Kraken: HTTP 200
    with ``EAPI:Rate limit exceeded``)."""
    SERVER_ERROR = "server_error"
    """HTTP 503 with an HTML body, as a load balancer sends it."""
    TIMEOUT = "timeout"
    """The transport timed out: ``RequestTimeout`` (raised at once, no real waiting)."""
    NETWORK_DOWN = "network_down"
    """The connection was refused or the host is unreachable."""
    MALFORMED = "malformed"
    """HTTP 200 with a body that is not the exchange's JSON (an HTML error page)."""
    TRUNCATED = "truncated"
    """HTTP 200 with the handler's real JSON body cut in half (a connection cut mid-body)."""


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    host: str | None
    handler: Handler


@dataclass
class _Injection:
    fault: Fault
    remaining: int | None
    """None: until cleared."""
    pattern: re.Pattern[str] | None
    method: str | None


class UnroutedRequest(AssertionError):
    """A request no route matches: a test or a route table is incomplete (never silently answered)."""


class Responder:
    """Routes requests of one exchange to handlers; injects faults; records every request.

    Routes are matched in registration order, newest first, so a test can override a default route by
    registering the same path again. ``path`` is a regular expression matched against the whole URL path.
    """

    def __init__(
        self,
        exchange_id: str,
        rate_limit_reply: Callable[[], Reply] | None = None,
    ) -> None:
        self.exchange_id = exchange_id
        self._routes: list[_Route] = []
        self._faults: list[_Injection] = []
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self.served: list[tuple[Request, int]] = []
        self.rate_limit_reply = rate_limit_reply or (
            lambda: Reply({"error": "rate limit"}, status=429, reason="Too Many Requests")
        )

    # --- routes -------------------------------------------------------------------------------------
    def route(self, method: str, path: str, handler: Handler, host: str | None = None) -> None:
        """Serve ``method`` requests whose URL path fully matches the regex ``path`` (optionally on ``host``)."""
        with self._lock:
            self._routes.insert(0, _Route(method.upper(), re.compile(path), host, handler))

    def handler(self, method: str, path: str) -> Handler:
        """The handler now serving ``method`` on the route registered with exactly ``path`` (to wrap it)."""
        with self._lock:
            for route in self._routes:
                if route.method == method.upper() and route.pattern.pattern == path:
                    return route.handler
        raise KeyError(f"no {method} route {path!r}")

    # --- faults -------------------------------------------------------------------------------------
    def inject(self, fault: Fault, times: int | None = 1, path: str | None = None, method: str | None = None) -> None:
        """The next ``times`` matching requests (all until ``clear_faults`` when None) get ``fault``."""
        with self._lock:
            self._faults.append(
                _Injection(fault, times, re.compile(path) if path else None, method.upper() if method else None)
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, request: Request) -> Fault | None:
        with self._lock:
            for injection in self._faults:
                if injection.pattern is not None and not injection.pattern.fullmatch(request.path):
                    continue
                if injection.method is not None and injection.method != request.method:
                    continue
                if injection.remaining is not None:
                    injection.remaining -= 1
                    if injection.remaining <= 0:
                        self._faults.remove(injection)
                return injection.fault
        return None

    # --- queries ------------------------------------------------------------------------------------
    def count(self, path: str, method: str = "GET") -> int:
        """How many requests matched ``path`` (a regex on the URL path), faults included."""
        pattern = re.compile(path)
        with self._lock:
            return sum(1 for r in self.requests if r.method == method and pattern.fullmatch(r.path))

    # --- serving ------------------------------------------------------------------------------------
    def serve(self, method: str, url: str, headers: dict[str, str] | None, body: str | None) -> Reply:
        parts = urlsplit(url)
        request = Request(
            method.upper(), url, parts.netloc, parts.path, dict(parse_qsl(parts.query)), dict(headers or {}), body
        )
        with self._lock:
            self.requests.append(request)
        fault = self._take_fault(request)
        details = f"{self.exchange_id} {request.method} {url}"
        if fault is Fault.TIMEOUT:
            raise ccxt.RequestTimeout(details)
        if fault is Fault.NETWORK_DOWN:
            raise ccxt.ExchangeNotAvailable(details)
        if fault is Fault.RATE_LIMIT:
            return self.rate_limit_reply()
        if fault is Fault.SERVER_ERROR:
            page = "<html><head><title>503 Service Unavailable</title></head><body>Service Unavailable</body></html>"
            return Reply(page, status=503, reason="Service Unavailable", headers={"Content-Type": "text/html"})
        if fault is Fault.MALFORMED:
            page = "<html><body><h1>Bad gateway</h1><p>upstream sent an invalid response</p></body></html>"
            return Reply(page, headers={"Content-Type": "text/html"})
        reply = self._dispatch(request)
        if fault is Fault.TRUNCATED:
            text = reply.text()
            reply = Reply(
                text[: max(1, len(text) // 2)], status=reply.status, reason=reply.reason, headers=reply.headers
            )
        with self._lock:
            self.served.append((request, reply.status))
        return reply

    def _dispatch(self, request: Request) -> Reply:
        with self._lock:
            routes = list(self._routes)
        for route in routes:
            if route.method != request.method or not route.pattern.fullmatch(request.path):
                continue
            if route.host is not None and route.host != request.host:
                continue
            result = route.handler(request)
            return result if isinstance(result, Reply) else Reply(result)
        raise UnroutedRequest(f"{self.exchange_id}: no route for {request.method} {request.url}")

    # --- installation -------------------------------------------------------------------------------
    def install(self, exchange: Any) -> Any:
        """Replace ``exchange.fetch`` (sync or async instance) with this responder. Returns the exchange."""
        if inspect.iscoroutinefunction(type(exchange).fetch):

            async def fetch_async(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
                return self._complete(exchange, url, method, headers, body, is_async=True)

            exchange.fetch = fetch_async
        else:

            def fetch_sync(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
                return self._complete(exchange, url, method, headers, body, is_async=False)

            exchange.fetch = fetch_sync
        return exchange

    def _complete(self, ex: Any, url: str, method: str, headers: Any, body: Any, is_async: bool) -> Any:
        """What ccxt's transport does with a response, in the same order (see ccxt/base/exchange.py fetch)."""
        request_headers = ex.prepare_request_headers(headers)
        ex.last_request_headers = request_headers
        try:
            reply = self.serve(method, url, request_headers, body)
        except ccxt.ExchangeNotAvailable as exc:
            if is_async:
                raise
            raise ccxt.NetworkError(str(exc)) from None  # sync ccxt maps a refused connection to NetworkError
        status, reason, response_headers = reply.status, reply.reason, reply.headers
        http_response = ex.on_rest_response(
            status, reason, url, method, response_headers, reply.text(), request_headers, body
        )
        json_response = ex.parse_json(http_response)
        if ex.enableLastHttpResponse:
            ex.last_http_response = http_response
        if ex.enableLastJsonResponse:
            ex.last_json_response = json_response
        if ex.enableLastResponseHeaders:
            ex.last_response_headers = response_headers
        if not is_async and status >= 400:  # requests' raise_for_status path of sync ccxt
            skip = ex.handle_errors(
                status, reason, url, method, response_headers, http_response, json_response, request_headers, body
            )
            if not skip:
                ex.handle_http_status_code(status, reason, url, method, http_response)
            raise ccxt.ExchangeError(f"{ex.id} {method} {url}")
        ex.handle_errors(
            status, reason, url, method, response_headers, http_response, json_response, request_headers, body
        )
        if is_async:
            ex.handle_http_status_code(status, reason, url, method, http_response)
        if json_response is not None:
            return json_response
        return http_response
