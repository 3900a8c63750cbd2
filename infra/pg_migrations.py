"""The PostgreSQL journal schema as numbered migrations, applied in order by ``tradegraph db upgrade``.

Append a new number for every change; never edit a migration that has shipped.
"""

from __future__ import annotations

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, started_at BIGINT NOT NULL, finished_at BIGINT, mode TEXT NOT NULL,
        status TEXT NOT NULL, config JSONB NOT NULL, summary JSONB
    );
    CREATE TABLE decisions (
        id TEXT PRIMARY KEY, run_id TEXT NOT NULL, symbol TEXT NOT NULL, timeframe TEXT NOT NULL,
        candle_time BIGINT NOT NULL, as_of BIGINT NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL,
        action TEXT, inputs_hash TEXT NOT NULL, window_start BIGINT NOT NULL, window_end BIGINT NOT NULL,
        window_length INTEGER NOT NULL, body JSONB NOT NULL, seq BIGSERIAL,
        UNIQUE (run_id, symbol, timeframe, candle_time)
    );
    CREATE INDEX decisions_symbol_time ON decisions (symbol, candle_time);
    CREATE TABLE orders (
        client_order_id TEXT PRIMARY KEY, decision_id TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
        quantity DOUBLE PRECISION NOT NULL, reference_price DOUBLE PRECISION NOT NULL, submitted_at BIGINT NOT NULL,
        kind TEXT NOT NULL, status TEXT NOT NULL, filled_quantity DOUBLE PRECISION NOT NULL,
        stop_loss DOUBLE PRECISION, take_profit DOUBLE PRECISION
    );
    CREATE INDEX orders_decision ON orders (decision_id);
    CREATE TABLE fills (
        id BIGSERIAL PRIMARY KEY, client_order_id TEXT NOT NULL, decision_id TEXT NOT NULL, symbol TEXT NOT NULL,
        side TEXT NOT NULL, quantity DOUBLE PRECISION NOT NULL, price DOUBLE PRECISION NOT NULL,
        fee DOUBLE PRECISION NOT NULL, timestamp BIGINT NOT NULL, kind TEXT NOT NULL,
        slippage_bps DOUBLE PRECISION NOT NULL, realized_pnl DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX fills_decision ON fills (decision_id);
    CREATE TABLE portfolio_snapshots (
        run_id TEXT NOT NULL, timestamp BIGINT NOT NULL, cash DOUBLE PRECISION NOT NULL,
        equity DOUBLE PRECISION NOT NULL, gross_exposure DOUBLE PRECISION NOT NULL,
        drawdown DOUBLE PRECISION NOT NULL, positions JSONB NOT NULL, PRIMARY KEY (run_id, timestamp)
    );
    """,
    2: "SELECT 1",
    # Distributed runs (infra.pg_job_store): the shared paper account of a run (the PaperBroker state, locked
    # with SELECT ... FOR UPDATE around every settlement and every gate decision), which decisions' bus
    # messages were confirmed, the scheduler's watermark, and the lookups workers make per job.
    3: """
    CREATE TABLE paper_accounts (
        account TEXT PRIMARY KEY, state TEXT NOT NULL, version BIGINT NOT NULL DEFAULT 0,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE bus_published (decision_id TEXT PRIMARY KEY, published_at BIGINT NOT NULL);
    CREATE TABLE schedule_watermarks (
        run_id TEXT NOT NULL, timeframe TEXT NOT NULL, candle_time BIGINT NOT NULL, updated_at BIGINT NOT NULL,
        PRIMARY KEY (run_id, timeframe)
    );
    CREATE INDEX decisions_run_candle ON decisions (run_id, candle_time);
    CREATE INDEX fills_symbol_time ON fills (symbol, timestamp);
    """,
}

SCHEMA_VERSION = max(MIGRATIONS)
