"""The read-only web dashboard over the journal (FastAPI + Jinja2 with autoescape, inline SVG charts).

Pages: the decisions timeline with filters (``/``), one decision's evidence chain (``/decisions/{id}``),
equity and drawdown with the comparison against buy-and-hold (``/equity``), gate denials (``/denials``) and the
chat (``/chat``; a chat panel sits on every page). JSON: ``/api/decisions``, ``/api/decisions/{id}``,
``/api/chat`` (POST), ``/healthz``.

It only reads: the journal is opened read-only by the caller, the one POST endpoint asks the chat, and every
response carries a Content-Security-Policy that allows no inline script and nothing from another origin.
The journal connection is shared by the server's worker threads, so every journal access holds one lock.
Every string from the journal is escaped by Jinja2's autoescape (the JavaScript only ever sets textContent).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, PackageLoader
from markupsafe import Markup
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from infra.web.charts import line_chart
from tools.errors import TradegraphError
from tools.journal_reader import DecisionQuery, JournalReader

PAGE_SIZE = 100
OUTCOMES = ("invalid", "skipped", "hold", "no_order", "denied", "ordered", "error", "llm_error", "llm_rejected",
            "budget_exhausted", "adopted")  # fmt: skip
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@dataclass
class WebDeps:
    """What the composition root wires in: the reader and the chat, explain and performance functions."""

    reader: JournalReader
    answer: Callable[[str], dict[str, Any]]
    """A chat answer as a dict: text, cited, mode, withheld_reason."""
    explain: Callable[[str], dict[str, Any]]
    """The chat tools' view of one decision (with its ``later`` outcome), or a dict with an ``error``."""
    performance: Callable[[str], dict[str, Any]]
    """A run's comparison against buy-and-hold; raises TradegraphError when there is too little data."""
    chat_run: Callable[[], str | None]
    """The run the chat answers about."""
    chat_mode: str = "deterministic"


class ChatRequest(BaseModel):
    question: str = Field(min_length=1, max_length=2000)


class BadRequest(Exception):
    pass


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


TIME_KEYS = {"called_at", "submitted_at", "timestamp", "candle_time", "as_of", "window_start", "window_end"}


def _cell(value: Any, key: str = "") -> str:
    """A table cell: times (UTC ms under a time-like key) as dates, the rest as numbers or text."""
    if key in TIME_KEYS and isinstance(value, int) and not isinstance(value, bool):
        return _utc(value)
    return _num(value)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=1, default=str, ensure_ascii=False)


def _utc(ms: Any) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(int(ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _pct(value: Any, signed: bool = True) -> str:
    return "-" if value is None else f"{100 * float(value):{'+' if signed else ''}.2f}%"


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r))


def _parse_time(text: str | None, field: str, end_of_day: bool = False) -> int | None:
    if text is None or not text.strip():
        return None
    cleaned = text.strip().replace("T", " ")
    for fmt, is_day in (("%Y-%m-%d %H:%M", False), ("%Y-%m-%d", True)):
        try:
            t = datetime.strptime(cleaned, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
        ms = int(t.timestamp() * 1000)
        return ms + 86_400_000 if is_day and end_of_day else ms
    raise BadRequest(f"{field} {text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC)")


def _choice(value: str | None, allowed: tuple[str, ...], field: str) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise BadRequest(f"{field} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def create_app(deps: WebDeps) -> FastAPI:
    app = FastAPI(title="tradegraph", docs_url=None, redoc_url=None, openapi_url=None)
    env = Environment(loader=PackageLoader("infra.web", "templates"), autoescape=True, trim_blocks=True,
                      lstrip_blocks=True)  # fmt: skip
    env.filters.update(num=_num, utc=_utc, pct=_pct, columns=_columns, cell=_cell, pretty=_pretty)
    lock = threading.RLock()  # page() reads the run list while a handler may already hold it
    assets = resources.files("infra.web") / "assets"

    def reader() -> JournalReader:
        return deps.reader

    def page(name: str, request: Request, status: int = 200, **context: Any) -> HTMLResponse:
        with lock:
            runs = reader().list_runs()
        context.setdefault("run_id", runs[0]["run_id"] if runs else None)
        body = env.get_template(name).render(
            request=request, runs=runs, chat_mode=deps.chat_mode, path=request.url.path, **context
        )
        return HTMLResponse(body, status_code=status)

    def error_page(request: Request, status: int, message: str) -> HTMLResponse:
        return page("error.html", request, status=status, message=message, title="error")

    def resolve_run(run: str | None) -> str | None:
        """The run a page shows: the one asked for, else the chat's (``--run``), else the latest."""
        with lock:
            if run:
                if reader().get_run(run) is None:
                    raise LookupError(f"no run {run!r} in the journal")
                return run
            default = deps.chat_run()
            if default is not None:
                return default
            latest = reader().latest_run()
        return latest["run_id"] if latest else None

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)
        return error_page(request, exc.status_code, str(exc.detail))

    @app.exception_handler(TradegraphError)
    async def journal_error(request: Request, exc: TradegraphError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(exc)}, status_code=503)
        return error_page(request, 503, f"the journal could not be read: {exc}")

    @app.get("/assets/{name}")
    def asset(name: str) -> Response:
        kinds = {"app.css": "text/css", "chat.js": "text/javascript"}
        if name not in kinds:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response((assets / name).read_text(encoding="utf-8"), media_type=kinds[name])

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        return JSONResponse({"error": f"{where}: {first['msg']}" if where else str(first["msg"])}, status_code=422)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        with lock:
            latest = reader().latest_run()
        return {"ok": True, "latest_run": latest["run_id"] if latest else None}

    def query_from(params: Mapping[str, str], run_id: str) -> DecisionQuery:
        return DecisionQuery(
            run_id=run_id,
            symbol=(params.get("symbol") or "").strip().upper() or None,
            action=_choice(params.get("action"), ("BUY", "SELL", "HOLD"), "action"),
            verdict=_choice(params.get("verdict"), ("APPROVE", "SHRINK", "DENY"), "verdict"),
            outcomes=(o,) if (o := _choice(params.get("outcome"), OUTCOMES, "outcome")) else None,
            start=_parse_time(params.get("start"), "from"),
            end=_parse_time(params.get("end"), "to", end_of_day=True),
        )

    @app.get("/", response_class=HTMLResponse)
    def timeline(request: Request) -> HTMLResponse:
        params = dict(request.query_params)
        try:
            run_id = resolve_run(params.get("run"))
        except LookupError as exc:
            return error_page(request, 404, str(exc))
        if run_id is None:
            return page("timeline.html", request, rows=[], total=0, filters=params, symbols=[], title="decisions")
        try:
            pg = int(params.get("page") or 1)
            if pg < 1:
                raise ValueError
            query = query_from(params, run_id)
        except BadRequest as exc:
            return error_page(request, 400, str(exc))
        except ValueError:
            return error_page(request, 400, f"page must be a positive number, not {params.get('page')!r}")
        with lock:
            rows = reader().find_decisions(
                query.model_copy(update={"limit": PAGE_SIZE, "offset": (pg - 1) * PAGE_SIZE})
            )
            total = reader().count_decisions(query)
            symbols = reader().run_symbols(run_id)
            run = reader().get_run(run_id)
        keep = {k: v for k, v in params.items() if v and k != "page"}
        return page("timeline.html", request, rows=rows, total=total, filters=params, symbols=symbols, run=run,
                    run_id=run_id, page_number=pg, pages=max(1, -(-total // PAGE_SIZE)), keep=keep,
                    outcomes=OUTCOMES, title="decisions")  # fmt: skip

    @app.get("/decisions/{decision_id}", response_class=HTMLResponse)
    def decision(request: Request, decision_id: str) -> HTMLResponse:
        with lock:
            d = reader().get_decision(decision_id)
        if d is None:
            return error_page(request, 404, f"no decision {decision_id!r} in the journal")
        with lock:
            view = deps.explain(decision_id)
            same = DecisionQuery(run_id=d["run_id"], symbol=d["symbol"], limit=1)
            before = reader().find_decisions(same.model_copy(update={"end": d["candle_time"], "newest_first": True}))
            after = reader().find_decisions(same.model_copy(update={"start": d["candle_time"] + 1}))
        return page("decision.html", request, d=d, later=view.get("later") or {}, run_id=d["run_id"],
                    suggestion=f"explain {decision_id}",
                    previous=before[0]["id"] if before else None, next=after[0]["id"] if after else None,
                    title=decision_id)  # fmt: skip

    @app.get("/equity", response_class=HTMLResponse)
    def equity(request: Request, run: str | None = None) -> HTMLResponse:
        try:
            run_id = resolve_run(run)
        except LookupError as exc:
            return error_page(request, 404, str(exc))
        points: list[dict[str, Any]] = []
        comparison: dict[str, Any] | None = None
        problem = None
        if run_id is not None:
            with lock:
                points = reader().portfolio_points(run_id)
                try:
                    comparison = deps.performance(run_id)
                except TradegraphError as exc:
                    problem = str(exc)
        times = [float(p["timestamp"]) for p in points]
        charts = {
            "equity": Markup(line_chart(times, [p["equity"] for p in points], label="equity")),
            "drawdown": Markup(
                line_chart(
                    times,
                    [-100 * p["drawdown"] for p in points],
                    label="drawdown",
                    area=True,
                    color="#dc2626",
                    suffix="%",
                )
            ),
        }
        return page("equity.html", request, run_id=run_id, points=points, charts=charts, comparison=comparison,
                    problem=problem, title="equity")  # fmt: skip

    @app.get("/denials", response_class=HTMLResponse)
    def denials(request: Request, run: str | None = None) -> HTMLResponse:
        try:
            run_id = resolve_run(run)
        except LookupError as exc:
            return error_page(request, 404, str(exc))
        rows: list[dict[str, Any]] = []
        if run_id is not None:
            with lock:
                rows = reader().find_decisions(DecisionQuery(run_id=run_id, verdict="DENY"))
        counts: dict[str, int] = {}
        for r in rows:
            for code in r["gate_reasons"]:
                counts[code] = counts.get(code, 0) + 1
        return page("denials.html", request, run_id=run_id, rows=rows,
                    counts=sorted(counts.items(), key=lambda kv: -kv[1]), title="gate denials")  # fmt: skip

    def ask(question: str) -> dict[str, Any]:
        with lock:
            return deps.answer(question)

    @app.get("/chat", response_class=HTMLResponse)
    def chat_page(request: Request) -> HTMLResponse:
        with lock:
            chat_run = deps.chat_run()
        return page("chat.html", request, answer=None, question="", chat_run=chat_run, title="chat")

    @app.post("/chat", response_class=HTMLResponse)
    def chat_form(request: Request, question: str = Form(default="")) -> HTMLResponse:
        question = question.strip()[:2000]
        answer = ask(question) if question else {"text": "Ask a question first.", "cited": [], "mode": "-"}
        with lock:
            chat_run = deps.chat_run()
        return page("chat.html", request, answer=answer, question=question, chat_run=chat_run, title="chat")

    @app.post("/api/chat")
    def chat_api(body: ChatRequest) -> dict[str, Any]:
        return ask(body.question.strip())

    @app.get("/api/decisions")
    def decisions_api(request: Request) -> Response:
        params = dict(request.query_params)
        try:
            run_id = resolve_run(params.get("run"))
            if run_id is None:
                return JSONResponse({"total": 0, "decisions": []})
            query = query_from(params, run_id)
            limit = int(params.get("limit") or PAGE_SIZE)
            if not 1 <= limit <= 1000:
                raise BadRequest("limit must be between 1 and 1000")
        except LookupError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        except (BadRequest, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        with lock:
            rows = reader().find_decisions(query.model_copy(update={"limit": limit}))
            total = reader().count_decisions(query)
        return JSONResponse({"run_id": run_id, "total": total, "decisions": rows})

    @app.get("/api/decisions/{decision_id}")
    def decision_api(decision_id: str) -> Response:
        with lock:
            d = reader().get_decision(decision_id)
        if d is None:
            return JSONResponse({"error": f"no decision {decision_id!r} in the journal"}, status_code=404)
        return JSONResponse(d)

    return app
