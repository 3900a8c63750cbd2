"""The PostgreSQL journal schema as numbered migrations, applied in order by ``tradegraph db upgrade``.

Append a new number for every change; never edit a migration that has shipped.

- v1: ``runs``, ``decisions`` (JSONB body), ``orders``, ``fills``, ``portfolio_snapshots``.
- v2: the seed's tables ``signals``, ``risk_assessments``, ``llm_calls``, ``candles``, ``positions``, ``trades``
  (round trips), ``agent_configs`` and ``performance_metrics``. Triggers derive them in the transaction that
  writes the decision, fill or run they come from; the migration backfills them from what a v1 journal holds
  with the same functions. ``candles`` holds the candle each decision was taken on (from the decision body,
  which has carried it since v2: a v1 journal has no candles to backfill).

TimescaleDB is not part of a migration: after migrating, ``HYPERTABLES`` are converted whenever the extension
is loaded in the database (also when it is installed later), and stay plain tables when it is not.
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
    2: """
    -- v2: the seed's tables next to decisions/orders/fills/runs, derived in the same transaction by triggers
    -- (one code path for live writes and for the backfill of a v1 journal below).
    ALTER TABLE fills ADD COLUMN run_id TEXT;
    UPDATE fills f SET run_id = d.run_id FROM decisions d WHERE d.id = f.decision_id;
    CREATE INDEX fills_run ON fills (run_id, timestamp);
    CREATE UNIQUE INDEX fills_order_time ON fills (client_order_id, timestamp, kind);

    CREATE TABLE signals (
        decision_id TEXT NOT NULL, idx INTEGER NOT NULL, run_id TEXT NOT NULL, symbol TEXT NOT NULL,
        timeframe TEXT NOT NULL, candle_time BIGINT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
        direction TEXT NOT NULL, strength DOUBLE PRECISION NOT NULL, signal_values JSONB NOT NULL,
        PRIMARY KEY (decision_id, idx)
    );
    CREATE INDEX signals_run ON signals (run_id, candle_time);
    CREATE INDEX signals_name ON signals (name, candle_time);
    CREATE TABLE risk_assessments (
        decision_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, symbol TEXT NOT NULL, timeframe TEXT NOT NULL,
        candle_time BIGINT NOT NULL, win_probability DOUBLE PRECISION, payoff_ratio DOUBLE PRECISION,
        kelly_fraction DOUBLE PRECISION, applied_fraction DOUBLE PRECISION, target_notional DOUBLE PRECISION,
        current_notional DOUBLE PRECISION, atr DOUBLE PRECISION, stop_loss DOUBLE PRECISION,
        take_profit DOUBLE PRECISION, var_confidence DOUBLE PRECISION, var_historical DOUBLE PRECISION,
        cvar_historical DOUBLE PRECISION, var_parametric DOUBLE PRECISION, cvar_parametric DOUBLE PRECISION,
        exposure_before DOUBLE PRECISION, exposure_after DOUBLE PRECISION, note TEXT,
        proposal_side TEXT, proposal_quantity DOUBLE PRECISION, proposal_price DOUBLE PRECISION,
        gate_decision TEXT, gate_reasons TEXT[], approved_quantity DOUBLE PRECISION
    );
    CREATE INDEX risk_assessments_run ON risk_assessments (run_id, candle_time);
    CREATE TABLE llm_calls (
        decision_id TEXT NOT NULL, idx INTEGER NOT NULL, run_id TEXT NOT NULL, symbol TEXT NOT NULL,
        candle_time BIGINT NOT NULL, node TEXT, provider TEXT, base_url TEXT, model TEXT, prompt_id TEXT,
        prompt_hash TEXT, input_hash TEXT, params JSONB, raw_response TEXT, parsed JSONB, outcome TEXT, error TEXT,
        input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL, cost_usd DOUBLE PRECISION NOT NULL,
        latency_ms DOUBLE PRECISION, called_at BIGINT, source TEXT, gating TEXT, injection_flags JSONB,
        PRIMARY KEY (decision_id, idx)
    );
    CREATE INDEX llm_calls_run ON llm_calls (run_id, called_at);
    CREATE TABLE candles (
        exchange TEXT NOT NULL, symbol TEXT NOT NULL, timeframe TEXT NOT NULL, open_time BIGINT NOT NULL,
        open DOUBLE PRECISION NOT NULL, high DOUBLE PRECISION NOT NULL, low DOUBLE PRECISION NOT NULL,
        close DOUBLE PRECISION NOT NULL, volume DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (exchange, symbol, timeframe, open_time)
    );
    CREATE TABLE positions (
        run_id TEXT NOT NULL, symbol TEXT NOT NULL, quantity DOUBLE PRECISION NOT NULL,
        average_price DOUBLE PRECISION, realized_pnl DOUBLE PRECISION NOT NULL, fees DOUBLE PRECISION NOT NULL,
        fills INTEGER NOT NULL, trade_seq INTEGER NOT NULL, updated_at BIGINT NOT NULL, last_decision_id TEXT NOT NULL,
        PRIMARY KEY (run_id, symbol)
    );
    CREATE TABLE trades (
        run_id TEXT NOT NULL, symbol TEXT NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL, side TEXT NOT NULL,
        entry_time BIGINT NOT NULL, exit_time BIGINT, entry_quantity DOUBLE PRECISION NOT NULL,
        exit_quantity DOUBLE PRECISION NOT NULL, entry_price DOUBLE PRECISION NOT NULL, exit_price DOUBLE PRECISION,
        entry_notional DOUBLE PRECISION NOT NULL, exit_notional DOUBLE PRECISION NOT NULL,
        fees DOUBLE PRECISION NOT NULL, pnl DOUBLE PRECISION NOT NULL, exit_reason TEXT,
        entry_decision_id TEXT NOT NULL, exit_decision_id TEXT, fills INTEGER NOT NULL,
        PRIMARY KEY (run_id, symbol, seq)
    );
    CREATE INDEX trades_run_time ON trades (run_id, entry_time);
    CREATE TABLE agent_configs (
        run_id TEXT PRIMARY KEY, reasoner TEXT NOT NULL, model TEXT, config JSONB NOT NULL,
        prompts JSONB NOT NULL DEFAULT '[]', created_at BIGINT NOT NULL
    );
    CREATE TABLE performance_metrics (
        run_id TEXT NOT NULL, time BIGINT NOT NULL, name TEXT NOT NULL, value DOUBLE PRECISION NOT NULL,
        computed_at BIGINT NOT NULL, PRIMARY KEY (run_id, name, time)
    );

    CREATE FUNCTION tradegraph_derive_decisions(ids TEXT[]) RETURNS void LANGUAGE plpgsql AS $fn$
    BEGIN
        INSERT INTO signals
        SELECT d.id, s.ord - 1, d.run_id, d.symbol, d.timeframe, d.candle_time, s.v->>'name', s.v->>'kind',
               s.v->>'direction', (s.v->>'strength')::float8, COALESCE(s.v->'values', '{}'::jsonb)
        FROM decisions d
        CROSS JOIN LATERAL jsonb_array_elements(
            CASE WHEN jsonb_typeof(d.body->'signals') = 'array' THEN d.body->'signals' ELSE '[]'::jsonb END
        ) WITH ORDINALITY AS s(v, ord)
        WHERE d.id = ANY(ids);

        INSERT INTO risk_assessments
        SELECT d.id, d.run_id, d.symbol, d.timeframe, d.candle_time,
               (r->>'win_probability')::float8, (r->>'payoff_ratio')::float8, (r->>'kelly_fraction')::float8,
               (r->>'applied_fraction')::float8, (r->>'target_notional')::float8, (r->>'current_notional')::float8,
               (r->>'atr')::float8, (r->>'stop_loss')::float8, (r->>'take_profit')::float8,
               (r->>'var_confidence')::float8, (r->>'var_historical')::float8, (r->>'cvar_historical')::float8,
               (r->>'var_parametric')::float8, (r->>'cvar_parametric')::float8, (r->>'exposure_before')::float8,
               (r->>'exposure_after')::float8, r->>'note',
               p->>'side', (p->>'quantity')::float8, (p->>'reference_price')::float8,
               g->>'decision',
               CASE WHEN jsonb_typeof(g->'reasons') = 'array'
                    THEN ARRAY(SELECT jsonb_array_elements_text(g->'reasons')) END,
               (g->>'approved_quantity')::float8
        FROM decisions d
        CROSS JOIN LATERAL (SELECT d.body->'risk' AS r, d.body->'proposal' AS p, d.body->'verdict' AS g) x
        WHERE d.id = ANY(ids) AND jsonb_typeof(r) = 'object';

        INSERT INTO llm_calls
        SELECT d.id, c.ord - 1, d.run_id, d.symbol, d.candle_time, c.v->>'node', c.v->>'provider', c.v->>'base_url',
               c.v->>'model', c.v->>'prompt_id', c.v->>'prompt_hash', c.v->>'input_hash',
               NULLIF(c.v->'params', 'null'), c.v->>'raw_response', NULLIF(c.v->'parsed', 'null'),
               c.v->>'outcome', c.v->>'error',
               COALESCE((c.v->>'input_tokens')::bigint, 0), COALESCE((c.v->>'output_tokens')::bigint, 0),
               COALESCE((c.v->>'cost_usd')::float8, 0), (c.v->>'latency_ms')::float8,
               (c.v->>'called_at')::float8::bigint, c.v->>'source', c.v->>'gating',
               NULLIF(c.v->'injection_flags', 'null')
        FROM decisions d
        CROSS JOIN LATERAL jsonb_array_elements(
            CASE WHEN jsonb_typeof(d.body->'reasoner'->'calls') = 'array' THEN d.body->'reasoner'->'calls'
                 ELSE '[]'::jsonb END
        ) WITH ORDINALITY AS c(v, ord)
        WHERE d.id = ANY(ids);

        INSERT INTO candles
        SELECT DISTINCT ON (1, 2, 3, 4)
               COALESCE(r.config->>'exchange', 'unknown'), d.symbol, d.timeframe, d.candle_time,
               (k->>'open')::float8, (k->>'high')::float8, (k->>'low')::float8, (k->>'close')::float8,
               (k->>'volume')::float8
        FROM decisions d
        CROSS JOIN LATERAL (SELECT d.body->'candle' AS k) x
        LEFT JOIN runs r ON r.run_id = d.run_id
        WHERE d.id = ANY(ids) AND jsonb_typeof(k) = 'object'
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (exchange, symbol, timeframe, open_time) DO UPDATE SET
            open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
            volume = excluded.volume;
    END
    $fn$;

    CREATE FUNCTION tradegraph_decisions_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        PERFORM tradegraph_derive_decisions(ARRAY(SELECT id FROM new_decisions));
        RETURN NULL;
    END
    $fn$;
    CREATE TRIGGER decisions_derive AFTER INSERT ON decisions REFERENCING NEW TABLE AS new_decisions
        FOR EACH STATEMENT EXECUTE FUNCTION tradegraph_decisions_inserted();

    -- Position and round trip of a fill, with the paper broker's own arithmetic: a fill in the position's
    -- direction averages the entry price; against it realizes; through zero closes the round trip and opens
    -- the next one with the rest at the fill price.
    CREATE FUNCTION tradegraph_apply_fill(p_run TEXT, p_decision TEXT, p_symbol TEXT, p_side TEXT,
        p_qty DOUBLE PRECISION, p_price DOUBLE PRECISION, p_fee DOUBLE PRECISION, p_ts BIGINT, p_kind TEXT,
        p_pnl DOUBLE PRECISION) RETURNS void LANGUAGE plpgsql AS $fn$
    DECLARE
        signed DOUBLE PRECISION := CASE WHEN p_side = 'buy' THEN p_qty ELSE -p_qty END;
        pos positions%ROWTYPE;
        total DOUBLE PRECISION;
        closing DOUBLE PRECISION;
        seq INTEGER;
    BEGIN
        IF p_run IS NULL THEN
            RETURN;
        END IF;
        SELECT * INTO pos FROM positions WHERE run_id = p_run AND symbol = p_symbol FOR UPDATE;
        IF NOT FOUND OR pos.quantity = 0 THEN
            seq := COALESCE(pos.trade_seq, 0) + 1;
            INSERT INTO positions VALUES (p_run, p_symbol, signed, p_price, p_pnl, p_fee, 1, seq, p_ts, p_decision)
            ON CONFLICT (run_id, symbol) DO UPDATE SET quantity = excluded.quantity,
                average_price = excluded.average_price, realized_pnl = positions.realized_pnl + p_pnl,
                fees = positions.fees + p_fee, fills = positions.fills + 1, trade_seq = excluded.trade_seq,
                updated_at = excluded.updated_at, last_decision_id = excluded.last_decision_id;
            INSERT INTO trades VALUES (p_run, p_symbol, seq, 'open', CASE WHEN signed > 0 THEN 'long' ELSE 'short' END,
                p_ts, NULL, p_qty, 0, p_price, NULL, p_qty * p_price, 0, p_fee, p_pnl, NULL, p_decision, NULL, 1);
            RETURN;
        END IF;
        total := pos.quantity + signed;
        IF pos.quantity * signed > 0 THEN
            UPDATE positions SET average_price = (pos.average_price * pos.quantity + p_price * signed) / total,
                quantity = total, realized_pnl = realized_pnl + p_pnl, fees = fees + p_fee, fills = fills + 1,
                updated_at = p_ts, last_decision_id = p_decision
            WHERE run_id = p_run AND symbol = p_symbol;
            UPDATE trades SET entry_quantity = entry_quantity + p_qty, entry_notional = entry_notional + p_qty * p_price,
                entry_price = (entry_notional + p_qty * p_price) / (entry_quantity + p_qty), fees = fees + p_fee,
                pnl = pnl + p_pnl, fills = fills + 1
            WHERE run_id = p_run AND symbol = p_symbol AND trades.seq = pos.trade_seq;
            RETURN;
        END IF;
        closing := least(p_qty, abs(pos.quantity));
        UPDATE trades SET exit_quantity = exit_quantity + closing, exit_notional = exit_notional + closing * p_price,
            exit_price = (exit_notional + closing * p_price) / (exit_quantity + closing), fees = fees + p_fee,
            pnl = pnl + p_pnl, fills = fills + 1,
            status = CASE WHEN abs(total) <= 1e-12 OR total * pos.quantity < 0 THEN 'closed' ELSE status END,
            exit_time = p_ts, exit_decision_id = p_decision,
            exit_reason = CASE WHEN p_kind = 'entry' THEN 'exit' ELSE p_kind END
        WHERE run_id = p_run AND symbol = p_symbol AND trades.seq = pos.trade_seq;
        IF abs(total) <= 1e-12 THEN
            UPDATE positions SET quantity = 0, average_price = NULL, realized_pnl = realized_pnl + p_pnl,
                fees = fees + p_fee, fills = fills + 1, updated_at = p_ts, last_decision_id = p_decision
            WHERE run_id = p_run AND symbol = p_symbol;
        ELSIF total * pos.quantity > 0 THEN
            UPDATE positions SET quantity = total, realized_pnl = realized_pnl + p_pnl, fees = fees + p_fee,
                fills = fills + 1, updated_at = p_ts, last_decision_id = p_decision
            WHERE run_id = p_run AND symbol = p_symbol;
        ELSE
            seq := pos.trade_seq + 1;
            UPDATE positions SET quantity = total, average_price = p_price, realized_pnl = realized_pnl + p_pnl,
                fees = fees + p_fee, fills = fills + 1, trade_seq = seq, updated_at = p_ts, last_decision_id = p_decision
            WHERE run_id = p_run AND symbol = p_symbol;
            INSERT INTO trades VALUES (p_run, p_symbol, seq, 'open', CASE WHEN total > 0 THEN 'long' ELSE 'short' END,
                p_ts, NULL, abs(total), 0, p_price, NULL, abs(total) * p_price, 0, 0, 0, NULL, p_decision, NULL, 1);
        END IF;
    END
    $fn$;

    CREATE FUNCTION tradegraph_fill_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        IF NEW.run_id IS NULL THEN
            SELECT run_id INTO NEW.run_id FROM decisions WHERE id = NEW.decision_id;
        END IF;
        PERFORM tradegraph_apply_fill(NEW.run_id, NEW.decision_id, NEW.symbol, NEW.side, NEW.quantity, NEW.price,
                                      NEW.fee, NEW.timestamp, NEW.kind, NEW.realized_pnl);
        RETURN NEW;
    END
    $fn$;
    CREATE TRIGGER fills_apply BEFORE INSERT ON fills FOR EACH ROW EXECUTE FUNCTION tradegraph_fill_inserted();

    CREATE FUNCTION tradegraph_agent_config(p_run TEXT) RETURNS void LANGUAGE sql AS $fn$
        INSERT INTO agent_configs (run_id, reasoner, model, config, created_at)
        SELECT r.run_id, COALESCE(r.config->>'reasoner', 'unknown'),
               COALESCE(r.config->'llm'->>'model', r.config->>'model'),
               COALESCE((SELECT jsonb_object_agg(key, value) FROM jsonb_each(r.config)
                         WHERE key IN ('reasoner', 'fusion', 'model', 'prompt', 'prompts', 'crew')
                            OR key LIKE 'llm%'), '{}'::jsonb),
               r.started_at
        FROM runs r WHERE r.run_id = p_run
        ON CONFLICT (run_id) DO NOTHING;
    $fn$;

    CREATE FUNCTION tradegraph_run_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        PERFORM tradegraph_agent_config(NEW.run_id);
        RETURN NULL;
    END
    $fn$;
    CREATE TRIGGER runs_agent_config AFTER INSERT ON runs FOR EACH ROW EXECUTE FUNCTION tradegraph_run_inserted();

    CREATE FUNCTION tradegraph_timeframe_ms(tf TEXT) RETURNS BIGINT LANGUAGE sql IMMUTABLE AS $fn$
        SELECT substring(tf FROM '^([0-9]+)')::bigint * CASE substring(tf FROM '([mhdw])$')
            WHEN 'm' THEN 60000 WHEN 'h' THEN 3600000 WHEN 'd' THEN 86400000 WHEN 'w' THEN 604800000 END
    $fn$;

    -- Per-run metrics at finish, with the definitions of evals/metrics.py (rf = 0, annualized with
    -- sqrt(periods per year), sample standard deviation, drawdown against the running peak of the curve);
    -- trade metrics over the run's closed round trips.
    CREATE FUNCTION tradegraph_finish_metrics(p_run TEXT, p_now BIGINT) RETURNS void LANGUAGE plpgsql AS $fn$
    DECLARE
        ppy DOUBLE PRECISION;
        n BIGINT;
        first_e DOUBLE PRECISION;
        last_e DOUBLE PRECISION;
        last_t BIGINT;
        mean_r DOUBLE PRECISION;
        sd DOUBLE PRECISION;
        downside DOUBLE PRECISION;
        mdd DOUBLE PRECISION;
        exposure DOUBLE PRECISION;
        growth DOUBLE PRECISION;
        cagr DOUBLE PRECISION;
        trades_n BIGINT;
        wins BIGINT;
        gross_win DOUBLE PRECISION;
        gross_loss DOUBLE PRECISION;
        mean_pnl DOUBLE PRECISION;
    BEGIN
        UPDATE agent_configs SET prompts = COALESCE((
            SELECT jsonb_agg(DISTINCT jsonb_build_object('prompt_id', prompt_id, 'prompt_hash', prompt_hash,
                                                         'model', model))
            FROM llm_calls WHERE run_id = p_run), '[]'::jsonb)
        WHERE run_id = p_run;
        SELECT 365.0 * 86400000 / tradegraph_timeframe_ms(config->>'timeframe') INTO ppy FROM runs WHERE run_id = p_run;
        DELETE FROM performance_metrics WHERE run_id = p_run;
        SELECT count(*) - 1, max(timestamp) INTO n, last_t FROM portfolio_snapshots WHERE run_id = p_run;
        IF n < 0 OR ppy IS NULL THEN
            RETURN;
        END IF;
        SELECT equity INTO first_e FROM portfolio_snapshots WHERE run_id = p_run ORDER BY timestamp LIMIT 1;
        SELECT equity INTO last_e FROM portfolio_snapshots WHERE run_id = p_run ORDER BY timestamp DESC LIMIT 1;
        SELECT avg(r), CASE WHEN count(r) >= 2 AND max(r) > min(r) THEN stddev_samp(r) END,
               sqrt(avg(least(r, 0) ^ 2))
        INTO mean_r, sd, downside
        FROM (SELECT equity / lag(equity) OVER (ORDER BY timestamp) - 1 AS r
              FROM portfolio_snapshots WHERE run_id = p_run) x WHERE r IS NOT NULL;
        SELECT max((peak - equity) / peak), avg(CASE WHEN positions <> '{}'::jsonb THEN 1.0 ELSE 0.0 END)
        INTO mdd, exposure
        FROM (SELECT equity, positions, max(equity) OVER (ORDER BY timestamp) AS peak
              FROM portfolio_snapshots WHERE run_id = p_run) x;
        growth := last_e / first_e;
        IF n = 0 THEN
            cagr := 0;
        ELSIF ln(growth) * ppy / n > 700 THEN
            cagr := 'Infinity';
        ELSE
            cagr := power(growth, ppy / n) - 1;
        END IF;
        SELECT count(*), count(*) FILTER (WHERE pnl > 0), COALESCE(sum(pnl) FILTER (WHERE pnl > 0), 0),
               COALESCE(-sum(pnl) FILTER (WHERE pnl < 0), 0), COALESCE(avg(pnl), 0)
        INTO trades_n, wins, gross_win, gross_loss, mean_pnl
        FROM trades WHERE run_id = p_run AND status = 'closed';
        INSERT INTO performance_metrics (run_id, time, name, value, computed_at)
        SELECT p_run, last_t, m.name, m.value, p_now FROM (VALUES
            ('periods', n::float8),
            ('final_equity', last_e),
            ('total_return', growth - 1),
            ('annualized_return', cagr),
            ('annualized_volatility', COALESCE(sd, 0) * sqrt(ppy)),
            ('sharpe', CASE WHEN sd > 0 THEN mean_r / sd * sqrt(ppy) ELSE 0 END),
            ('sortino', CASE WHEN n >= 2 AND downside > 0 THEN mean_r / downside * sqrt(ppy) ELSE 0 END),
            ('max_drawdown', COALESCE(mdd, 0)),
            ('calmar', CASE WHEN mdd > 0 THEN cagr / mdd ELSE 0 END),
            ('exposure_time', COALESCE(exposure, 0)),
            ('number_of_trades', trades_n::float8),
            ('win_rate', CASE WHEN trades_n > 0 THEN wins::float8 / trades_n ELSE 0 END),
            ('profit_factor', CASE WHEN gross_loss > 0 THEN gross_win / gross_loss
                                   WHEN gross_win > 0 THEN 'Infinity'::float8 ELSE 0 END),
            ('expectancy', mean_pnl),
            ('fees_paid', (SELECT COALESCE(sum(fee), 0) FROM fills WHERE run_id = p_run)),
            ('fills', (SELECT count(*)::float8 FROM fills WHERE run_id = p_run)),
            ('decisions', (SELECT count(*)::float8 FROM decisions WHERE run_id = p_run)),
            ('orders', (SELECT count(*)::float8 FROM decisions WHERE run_id = p_run AND outcome = 'ordered')),
            ('gate_denials', (SELECT count(*)::float8 FROM decisions WHERE run_id = p_run AND outcome = 'denied')),
            ('llm_calls', (SELECT count(*)::float8 FROM llm_calls WHERE run_id = p_run)),
            ('llm_tokens', (SELECT COALESCE(sum(input_tokens + output_tokens), 0)::float8 FROM llm_calls
                            WHERE run_id = p_run)),
            ('llm_cost_usd', (SELECT COALESCE(sum(cost_usd), 0) FROM llm_calls WHERE run_id = p_run))
        ) AS m(name, value);
    END
    $fn$;

    -- Backfill of a v1 journal: the same functions the triggers call, over what is already stored.
    SELECT tradegraph_agent_config(run_id) FROM runs;
    SELECT tradegraph_derive_decisions(ARRAY(SELECT id FROM decisions));
    DO $fn$
    DECLARE
        f RECORD;
    BEGIN
        FOR f IN SELECT * FROM fills ORDER BY id LOOP
            PERFORM tradegraph_apply_fill(f.run_id, f.decision_id, f.symbol, f.side, f.quantity, f.price, f.fee,
                                          f.timestamp, f.kind, f.realized_pnl);
        END LOOP;
    END
    $fn$;
    SELECT tradegraph_finish_metrics(run_id, COALESCE(finished_at, started_at)) FROM runs
    WHERE finished_at IS NOT NULL;
    """,
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

_DAY_MS = 86_400_000
HYPERTABLES: tuple[tuple[str, str, int], ...] = (
    ("candles", "open_time", 30 * _DAY_MS),
    ("portfolio_snapshots", "timestamp", 30 * _DAY_MS),
    ("performance_metrics", "time", 365 * _DAY_MS),
)
"""(table, time column in UTC ms, chunk interval in ms): every unique index of these tables has the time column."""
