"""The database schema, as an append-only list of migrations (simonw/llm's pattern).

Each migration is a function named `mNNN_what`, applied once, in order, and recorded in `_migrations`.
An applied migration is never edited: a change to the schema is a new function at the end.

`llm_calls` is the contract users' SQL and the rules depend on. It is a view over `llm_call_spans`, which
holds every model-call span received, from any instrumentation. One LLM call can arrive as several spans
(the anthropic SDK's own span and spendwatch's HTTP-level span beneath it; two instrumentations wrapping
one call), and the view shows each call once: a span is superseded when a spendwatch span of the same
trace started inside it (spendwatch's has the key id and the exact usage), or when another model-call
span is its direct child (the inner span is the call; the outer a wrapper). The writer marks superseded
spans in the transaction that inserts the span that supersedes them, so no query ever sees both —
whichever order the spans arrived in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import duckdb

MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = []


def migration(function: Callable[[duckdb.DuckDBPyConnection], None]):
    MIGRATIONS.append(function)
    return function


@migration
def m001_initial(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE llm_call_spans (
            trace_id VARCHAR NOT NULL,
            span_id VARCHAR NOT NULL,
            parent_span_id VARCHAR,
            start_time TIMESTAMPTZ NOT NULL,
            end_time TIMESTAMPTZ NOT NULL,
            duration_ms DOUBLE,
            service_name VARCHAR,
            provider VARCHAR,
            operation VARCHAR,
            request_model VARCHAR,
            response_model VARCHAR,
            response_id VARCHAR,
            streaming BOOLEAN,
            input_tokens BIGINT,
            output_tokens BIGINT,
            cache_read_tokens BIGINT,
            cache_write_tokens BIGINT,
            reasoning_tokens BIGINT,
            usage_estimated BOOLEAN NOT NULL DEFAULT false,
            cost_usd DOUBLE,
            api_key_id VARCHAR,
            api_key_hint VARCHAR,
            status_code INTEGER,
            error_type VARCHAR,
            finish_reasons VARCHAR[],
            server_address VARCHAR,
            attributes JSON,
            instrumentation_scope VARCHAR,
            from_spendwatch BOOLEAN NOT NULL,
            received_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (trace_id, span_id)
        )
        """
    )
    con.execute(
        """
        CREATE VIEW llm_calls AS
        SELECT
            s.trace_id, s.span_id, s.parent_span_id, s.start_time, s.end_time, s.duration_ms, s.service_name,
            s.provider, s.operation, s.request_model, s.response_model, s.response_id, s.streaming,
            s.input_tokens, s.output_tokens, s.cache_read_tokens, s.cache_write_tokens, s.reasoning_tokens,
            s.usage_estimated, s.cost_usd, s.api_key_id, s.api_key_hint, s.status_code, s.error_type,
            s.finish_reasons, s.server_address, s.attributes
        FROM llm_call_spans AS s
        WHERE s.from_spendwatch OR NOT EXISTS (
            SELECT 1
            FROM llm_call_spans AS inner_span
            WHERE inner_span.trace_id = s.trace_id
              AND inner_span.span_id <> s.span_id
              AND (
                  (inner_span.from_spendwatch
                   AND inner_span.start_time >= s.start_time AND inner_span.start_time <= s.end_time)
                  OR inner_span.parent_span_id = s.span_id
              )
        )
        """
    )
    con.execute("CREATE INDEX llm_call_spans_start_time ON llm_call_spans (start_time)")


@migration
def m002_alerts(con: duckdb.DuckDBPyConnection) -> None:
    """Alerts are written before they are delivered: a restart neither re-fires nor forgets one."""
    con.execute("CREATE SEQUENCE alert_ids")
    con.execute(
        """
        CREATE TABLE alerts (
            id BIGINT PRIMARY KEY DEFAULT nextval('alert_ids'),
            rule VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            group_by VARCHAR,
            group_value VARCHAR NOT NULL,
            window_start TIMESTAMPTZ NOT NULL,
            window_end TIMESTAMPTZ,
            threshold DOUBLE NOT NULL,
            value DOUBLE,
            limit_value DOUBLE,
            title VARCHAR NOT NULL,
            message VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            state VARCHAR NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            delivered_at TIMESTAMPTZ,
            last_error VARCHAR,
            UNIQUE (rule, group_value, window_start, threshold)
        )
        """
    )
    con.execute(
        """
        CREATE TABLE alert_deliveries (
            alert_id BIGINT NOT NULL,
            notifier VARCHAR NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TIMESTAMPTZ,
            delivered_at TIMESTAMPTZ,
            gave_up_at TIMESTAMPTZ,
            last_error VARCHAR,
            PRIMARY KEY (alert_id, notifier)
        )
        """
    )


SUPERSEDED_SQL = """
    UPDATE llm_call_spans AS s SET superseded = true
    WHERE s.start_time >= $since AND NOT s.from_spendwatch AND NOT s.superseded {traces}
      AND EXISTS (
          SELECT 1 FROM llm_call_spans AS inner_span
          WHERE inner_span.trace_id = s.trace_id
            AND inner_span.span_id <> s.span_id
            AND inner_span.start_time >= $since
            AND ((inner_span.from_spendwatch
                  AND inner_span.start_time >= s.start_time AND inner_span.start_time <= s.end_time)
                 OR inner_span.parent_span_id = s.span_id)
      )
"""


@migration
def m003_superseded_at_ingest(con: duckdb.DuckDBPyConnection) -> None:
    """Decide at ingest, once, which spans another span of the same call supersedes.

    The view of m001 decided it at query time with an anti-join over the whole table, so every rule tick
    cost more as the table grew (50 ms at a million rows). The writer now marks superseded spans in the
    same transaction that inserts a batch, looking only at spans near the batch in time, and the view is
    a filter.
    """
    con.execute("DROP VIEW llm_calls")  # DuckDB alters no table that a view or an index depends on
    con.execute("DROP INDEX llm_call_spans_start_time")
    con.execute("ALTER TABLE llm_call_spans ADD COLUMN superseded BOOLEAN NOT NULL DEFAULT false")
    con.execute("CREATE INDEX llm_call_spans_start_time ON llm_call_spans (start_time)")
    con.execute(SUPERSEDED_SQL.format(traces=""), {"since": datetime(1970, 1, 1, tzinfo=UTC)})
    con.execute(
        """
        CREATE VIEW llm_calls AS
        SELECT
            trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, service_name, provider,
            operation, request_model, response_model, response_id, streaming, input_tokens, output_tokens,
            cache_read_tokens, cache_write_tokens, reasoning_tokens, usage_estimated, cost_usd, api_key_id,
            api_key_hint, status_code, error_type, finish_reasons, server_address, attributes
        FROM llm_call_spans
        WHERE NOT superseded
        """
    )


@migration
def m004_no_persistent_indexes(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the primary key and the start-time index: together they were two thirds of the file.

    Measured at a million calls (benchmarks/RESULTS.md): 339 bytes a call on disk, of which the
    (trace_id, span_id) key took ~100 and the start_time index ~40; the writer also loaded that key into
    memory to check each batch (312 MiB RSS after a few exports). Neither earns its place: the writer
    now finds the spans it already stored with a join restricted to the batch's time range, which
    DuckDB answers from its per-row-group min/max, and time filters use those same zone maps. The rows
    are copied in start-time order, so old data is laid out as new data is appended.
    """
    con.execute("DROP VIEW llm_calls")
    con.execute(
        """
        CREATE TABLE llm_call_spans_new (
            trace_id VARCHAR NOT NULL,
            span_id VARCHAR NOT NULL,
            parent_span_id VARCHAR,
            start_time TIMESTAMPTZ NOT NULL,
            end_time TIMESTAMPTZ NOT NULL,
            duration_ms DOUBLE,
            service_name VARCHAR,
            provider VARCHAR,
            operation VARCHAR,
            request_model VARCHAR,
            response_model VARCHAR,
            response_id VARCHAR,
            streaming BOOLEAN,
            input_tokens BIGINT,
            output_tokens BIGINT,
            cache_read_tokens BIGINT,
            cache_write_tokens BIGINT,
            reasoning_tokens BIGINT,
            usage_estimated BOOLEAN NOT NULL DEFAULT false,
            cost_usd DOUBLE,
            api_key_id VARCHAR,
            api_key_hint VARCHAR,
            status_code INTEGER,
            error_type VARCHAR,
            finish_reasons VARCHAR[],
            server_address VARCHAR,
            attributes JSON,
            instrumentation_scope VARCHAR,
            from_spendwatch BOOLEAN NOT NULL,
            received_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            superseded BOOLEAN NOT NULL DEFAULT false
        )
        """
    )
    con.execute("INSERT INTO llm_call_spans_new BY NAME SELECT * FROM llm_call_spans ORDER BY start_time")
    con.execute("DROP TABLE llm_call_spans")
    con.execute("ALTER TABLE llm_call_spans_new RENAME TO llm_call_spans")
    con.execute(
        """
        CREATE VIEW llm_calls AS
        SELECT
            trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, service_name, provider,
            operation, request_model, response_model, response_id, streaming, input_tokens, output_tokens,
            cache_read_tokens, cache_write_tokens, reasoning_tokens, usage_estimated, cost_usd, api_key_id,
            api_key_hint, status_code, error_type, finish_reasons, server_address, attributes
        FROM llm_call_spans
        WHERE NOT superseded
        """
    )


LLM_CALLS_VIEW_M005 = """
    CREATE VIEW llm_calls AS
    SELECT
        trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, service_name, provider,
        operation, request_model, response_model, response_id, streaming, input_tokens, output_tokens,
        cache_read_tokens, cache_write_tokens, reasoning_tokens, usage_estimated, cost_usd, api_key_id,
        api_key_hint, status_code, error_type, finish_reasons, server_address, attributes,
        (input_tokens IS NULL AND output_tokens IS NULL AND error_type IS NULL AND coalesce(status_code, 0) < 400)
            AS usage_unknown
    FROM llm_call_spans
    WHERE NOT superseded
"""


@migration
def m005_call_identity(con: duckdb.DuckDBPyConnection) -> None:
    """Call identity from evidence (collector/identity.py), recorded; usage unknown as a state.

    m003's rule took a span for a wrapper of another when a spendwatch span started inside its time window,
    and counted siblings of one call twice. Each superseded span now says which span superseded it and by
    which rule (`superseded_by`, `supersede_rule`); `provider_raw` keeps the provider's spelling where it
    differed from the stored name; `span_links` holds, for a while, the parents of spans that are not model
    calls, so that ancestry runs through them; `dropped_attributes` counts the attribute names the
    allow-list dropped. The stored spans are decided again under the new rules once every migration has
    run (`REDECIDE_AFTER`): the decision reads columns later migrations add.
    """
    con.execute("DROP VIEW llm_calls")
    con.execute("ALTER TABLE llm_call_spans ADD COLUMN superseded_by VARCHAR")
    con.execute("ALTER TABLE llm_call_spans ADD COLUMN supersede_rule VARCHAR")
    con.execute("ALTER TABLE llm_call_spans ADD COLUMN provider_raw VARCHAR")
    con.execute(
        """
        CREATE TABLE span_links (
            trace_id VARCHAR NOT NULL,
            span_id VARCHAR NOT NULL,
            parent_span_id VARCHAR NOT NULL,
            received_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        )
        """
    )
    con.execute(
        """
        CREATE TABLE dropped_attributes (
            name VARCHAR PRIMARY KEY,
            spans BIGINT NOT NULL,
            first_seen TIMESTAMPTZ NOT NULL,
            last_seen TIMESTAMPTZ NOT NULL
        )
        """
    )
    con.execute(LLM_CALLS_VIEW_M005)


@migration
def m006_named_meanings(con: duckdb.DuckDBPyConnection) -> None:
    """`model` (the model that answered, else the one asked) and `unpriced` (tokens, no known price) as
    columns of `llm_calls`: each meaning written once, here, instead of as a copy in every query."""
    con.execute("DROP VIEW llm_calls")
    con.execute(
        """
        CREATE VIEW llm_calls AS
        SELECT
            trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, service_name, provider,
            operation, request_model, response_model, response_id, streaming, input_tokens, output_tokens,
            cache_read_tokens, cache_write_tokens, reasoning_tokens, usage_estimated, cost_usd, api_key_id,
            api_key_hint, status_code, error_type, finish_reasons, server_address, attributes,
            (input_tokens IS NULL AND output_tokens IS NULL AND error_type IS NULL AND coalesce(status_code, 0) < 400)
                AS usage_unknown,
            coalesce(response_model, request_model) AS model,
            (cost_usd IS NULL AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)) AS unpriced
        FROM llm_call_spans
        WHERE NOT superseded
        """
    )


@migration
def m007_usage_fees(con: duckdb.DuckDBPyConnection) -> None:
    """`fees_usd`: the part of `cost_usd` that is per-use fees (web searches, grounding), beside it."""
    con.execute("DROP VIEW llm_calls")
    con.execute("ALTER TABLE llm_call_spans ADD COLUMN fees_usd DOUBLE")
    con.execute(
        """
        CREATE VIEW llm_calls AS
        SELECT
            trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, service_name, provider,
            operation, request_model, response_model, response_id, streaming, input_tokens, output_tokens,
            cache_read_tokens, cache_write_tokens, reasoning_tokens, usage_estimated, cost_usd, api_key_id,
            api_key_hint, status_code, error_type, finish_reasons, server_address, attributes,
            (input_tokens IS NULL AND output_tokens IS NULL AND error_type IS NULL AND coalesce(status_code, 0) < 400)
                AS usage_unknown,
            coalesce(response_model, request_model) AS model,
            (cost_usd IS NULL AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)) AS unpriced,
            fees_usd
        FROM llm_call_spans
        WHERE NOT superseded
        """
    )


@migration
def m008_metrics_received_at(con: duckdb.DuckDBPyConnection) -> None:
    """`received_at` as a column of `llm_calls`: when the daemon committed the call, which only ever grows in
    the order rows are stored, so that the daemon's counters (collector/tally.py) read only the calls stored
    since they last looked, from DuckDB's per-row-group min/max, instead of every call at each scrape."""
    con.execute("DROP VIEW llm_calls")
    con.execute(
        """
        CREATE VIEW llm_calls AS
        SELECT
            trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, service_name, provider,
            operation, request_model, response_model, response_id, streaming, input_tokens, output_tokens,
            cache_read_tokens, cache_write_tokens, reasoning_tokens, usage_estimated, cost_usd, api_key_id,
            api_key_hint, status_code, error_type, finish_reasons, server_address, attributes,
            (input_tokens IS NULL AND output_tokens IS NULL AND error_type IS NULL AND coalesce(status_code, 0) < 400)
                AS usage_unknown,
            coalesce(response_model, request_model) AS model,
            (cost_usd IS NULL AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)) AS unpriced,
            fees_usd, received_at
        FROM llm_call_spans
        WHERE NOT superseded
        """
    )


@migration
def m009_attribution(con: duckdb.DuckDBPyConnection) -> None:
    """Who a call was for: `user`, `tenant`, `feature`, `agent`, `conversation` and a map of `tags` as
    columns of `llm_calls` (collector/attribution.py); `span_links.attribution`, what a span that is not a
    model call says of them, for the calls beneath it."""
    con.execute("DROP VIEW llm_calls")
    for column in ("user", "tenant", "feature", "agent", "conversation"):
        con.execute(f"ALTER TABLE llm_call_spans ADD COLUMN {column} VARCHAR")
    con.execute("ALTER TABLE llm_call_spans ADD COLUMN tags MAP(VARCHAR, VARCHAR)")
    con.execute("ALTER TABLE span_links ADD COLUMN attribution VARCHAR")
    con.execute(
        """
        CREATE VIEW llm_calls AS
        SELECT
            trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, service_name, provider,
            operation, request_model, response_model, response_id, streaming, input_tokens, output_tokens,
            cache_read_tokens, cache_write_tokens, reasoning_tokens, usage_estimated, cost_usd, api_key_id,
            api_key_hint, status_code, error_type, finish_reasons, server_address, attributes,
            (input_tokens IS NULL AND output_tokens IS NULL AND error_type IS NULL AND coalesce(status_code, 0) < 400)
                AS usage_unknown,
            coalesce(response_model, request_model) AS model,
            (cost_usd IS NULL AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)) AS unpriced,
            fees_usd, received_at, user, tenant, feature, agent, conversation, tags
        FROM llm_call_spans
        WHERE NOT superseded
        """
    )


@migration
def m010_billed_usage(con: duckdb.DuckDBPyConnection) -> None:
    """What the providers say they billed (spendwatch/billing), beside what was observed.

    `billed_usage`: the providers' usage buckets (OpenAI's Usage API, Anthropic's usage report) per
    source, bucket, model, provider key and project, in the same terms as `llm_calls` (input includes the
    cache), priced by spendwatch at the rates observed calls get. `billed_costs`: the providers' own
    dollars (OpenAI's Costs API, Anthropic's cost report), each row under the `grouping` it was asked
    for, so that sums never mix two groupings of the same dollars. `billing_keys`: the providers' API
    keys with their redacted values, for mapping them onto spendwatch's key ids. `billing_imports`: per
    provider and stream, up to where its buckets are final and need not be fetched again.
    """
    con.execute(
        """
        CREATE TABLE billed_usage (
            provider VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            bucket_start TIMESTAMPTZ NOT NULL,
            bucket_end TIMESTAMPTZ NOT NULL,
            model VARCHAR,
            provider_key_id VARCHAR,
            project_id VARCHAR,
            service_tier VARCHAR,
            requests BIGINT,
            input_tokens BIGINT,
            output_tokens BIGINT,
            cache_read_tokens BIGINT,
            cache_write_tokens BIGINT,
            units DOUBLE,
            unit VARCHAR,
            cost_usd DOUBLE,
            imported_at TIMESTAMPTZ NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE billed_costs (
            provider VARCHAR NOT NULL,
            bucket_start TIMESTAMPTZ NOT NULL,
            bucket_end TIMESTAMPTZ NOT NULL,
            grouping VARCHAR NOT NULL,
            line_item VARCHAR,
            model VARCHAR,
            project_id VARCHAR,
            provider_key_id VARCHAR,
            amount_usd DECIMAL(38, 12) NOT NULL,
            currency VARCHAR NOT NULL,
            imported_at TIMESTAMPTZ NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE billing_keys (
            provider VARCHAR NOT NULL,
            provider_key_id VARCHAR NOT NULL,
            name VARCHAR,
            redacted_value VARCHAR,
            hint VARCHAR,
            project_id VARCHAR,
            status VARCHAR,
            imported_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (provider, provider_key_id)
        )
        """
    )
    con.execute(
        """
        CREATE TABLE billing_imports (
            provider VARCHAR NOT NULL,
            stream VARCHAR NOT NULL,
            complete_through TIMESTAMPTZ,
            last_run_at TIMESTAMPTZ,
            last_error VARCHAR,
            PRIMARY KEY (provider, stream)
        )
        """
    )


@migration
def m011_list_cost_and_price_data(con: duckdb.DuckDBPyConnection) -> None:
    """`list_cost_usd` (list price) beside `cost_usd` (what is paid, once the config's discounts apply:
    FinOps' ListCost and EffectiveCost), and the price data each call was priced with
    (`price_data_version`, `price_data_source`). Calls stored before were priced at list price with data
    that was not recorded: their list cost is their cost, their data version unknown (NULL)."""
    con.execute("DROP VIEW llm_calls")
    con.execute("ALTER TABLE llm_call_spans ADD COLUMN list_cost_usd DOUBLE")
    con.execute("ALTER TABLE llm_call_spans ADD COLUMN price_data_version VARCHAR")
    con.execute("ALTER TABLE llm_call_spans ADD COLUMN price_data_source VARCHAR")
    con.execute("UPDATE llm_call_spans SET list_cost_usd = cost_usd WHERE cost_usd IS NOT NULL")
    con.execute(
        """
        CREATE VIEW llm_calls AS
        SELECT
            trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, service_name, provider,
            operation, request_model, response_model, response_id, streaming, input_tokens, output_tokens,
            cache_read_tokens, cache_write_tokens, reasoning_tokens, usage_estimated, cost_usd, api_key_id,
            api_key_hint, status_code, error_type, finish_reasons, server_address, attributes,
            (input_tokens IS NULL AND output_tokens IS NULL AND error_type IS NULL AND coalesce(status_code, 0) < 400)
                AS usage_unknown,
            coalesce(response_model, request_model) AS model,
            (cost_usd IS NULL AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)) AS unpriced,
            fees_usd, received_at, user, tenant, feature, agent, conversation, tags,
            list_cost_usd, price_data_version, price_data_source
        FROM llm_call_spans
        WHERE NOT superseded
        """
    )


@migration
def m012_fleet_sink(con: duckdb.DuckDBPyConnection) -> None:
    """What this daemon has appended to the fleet's shared table (spendwatch/fleet/sink.py).

    `fleet_identity` is the daemon's name in the fleet, made once. Per shared table (by its UUID, so a
    table dropped and created again starts afresh): `fleet_sink` has the number of the last batch the
    table holds (`seq`, also a table property, so a batch committed just before a crash is recognised
    after it), the batch under way (`pending_seq`, `pending`), and how far, in time received, calls have
    been decided (`shipped_through`); `fleet_sink_hours` has, per hour of start time, how many calls the
    table holds for this daemon and the sum of their row hashes, which says when an hour's calls changed
    after they were appended (a late span superseding one, a reprice) and the hour must be replaced.
    """
    con.execute("CREATE TABLE fleet_identity (daemon VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL)")
    con.execute(
        """
        CREATE TABLE fleet_sink (
            table_uuid VARCHAR PRIMARY KEY,
            daemon VARCHAR NOT NULL,
            seq BIGINT NOT NULL,
            shipped_through TIMESTAMPTZ,
            pending_seq BIGINT,
            pending JSON
        )
        """
    )
    con.execute(
        """
        CREATE TABLE fleet_sink_hours (
            table_uuid VARCHAR NOT NULL,
            hour BIGINT NOT NULL,
            calls BIGINT NOT NULL,
            digest HUGEINT NOT NULL,
            through TIMESTAMPTZ,
            PRIMARY KEY (table_uuid, hour)
        )
        """
    )


@migration
def m013_hourly_rollup(con: duckdb.DuckDBPyConnection) -> None:
    """`llm_calls_hourly`: the calls summed per UTC hour and group (spendwatch/hourly.py), which the rules,
    the dashboard and the report read for whole hours instead of every call; kept by the writer in the
    transaction of the rows it sums (collector/rollup.py). Empty here: it is summed from `llm_calls` once
    every migration has run (`ROLLUP_AFTER`), and `complete_before` stays NULL (read everything raw) until
    then."""
    con.execute(
        """
        CREATE TABLE llm_calls_hourly (
            grain INTEGER NOT NULL,
            hour TIMESTAMPTZ NOT NULL,
            provider VARCHAR,
            request_model VARCHAR,
            response_model VARCHAR,
            operation VARCHAR,
            api_key_id VARCHAR,
            service_name VARCHAR,
            user VARCHAR,
            tenant VARCHAR,
            feature VARCHAR,
            agent VARCHAR,
            calls BIGINT NOT NULL,
            errors BIGINT NOT NULL,
            input_tokens BIGINT,
            output_tokens BIGINT,
            cache_read_tokens BIGINT,
            cost_usd DOUBLE,
            unpriced_calls BIGINT NOT NULL,
            usage_unknown_calls BIGINT NOT NULL,
            first_start TIMESTAMPTZ NOT NULL,
            last_start TIMESTAMPTZ NOT NULL,
            api_key_hint VARCHAR
        )
        """
    )
    con.execute("CREATE TABLE llm_calls_hourly_state (complete_before TIMESTAMPTZ)")
    con.execute("INSERT INTO llm_calls_hourly_state VALUES (NULL)")


@migration
def m014_daily_latency(con: duckdb.DuckDBPyConnection) -> None:
    """`llm_calls_daily_latency`: the calls counted per UTC day, spender (key, model, service) and latency
    bucket (spendwatch/latency.py), from which the dashboard reads exact p95 latencies instead of sorting
    every call of the period. Kept with the hourly rollup; summed with it once every migration has run."""
    con.execute(
        """
        CREATE TABLE llm_calls_daily_latency (
            day TIMESTAMPTZ NOT NULL,
            what VARCHAR NOT NULL,
            grp VARCHAR NOT NULL,
            bucket INTEGER NOT NULL,
            calls BIGINT NOT NULL
        )
        """
    )


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations this database has not had; returns the names applied."""
    con.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
    applied = {name for (name,) in con.execute("SELECT name FROM _migrations").fetchall()}
    known = {function.__name__ for function in MIGRATIONS}
    unknown = applied - known
    if unknown:
        raise NewerSchemaError(sorted(unknown))
    done = []
    for function in MIGRATIONS:
        if function.__name__ in applied:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            function(con)
            con.execute("INSERT INTO _migrations VALUES (?, current_timestamp)", [function.__name__])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        done.append(function.__name__)
    if REDECIDE_AFTER & set(done):
        from spendwatch.collector.resolve import resolve_stored

        con.execute("BEGIN TRANSACTION")
        try:
            resolve_stored(con, since=None)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    if done and applied | set(done) >= ROLLUP_AFTER:
        from spendwatch.collector.rollup import rebuild

        con.execute("BEGIN TRANSACTION")
        try:
            rebuild(con)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return done


# Migrations after which every stored span is decided again by today's identity and attribution rules
# (collector/resolve.py), once all migrations have run: a migration's own code never calls today's code.
REDECIDE_AFTER = frozenset({"m005_call_identity", "m009_attribution"})
# Once the rollup exists, any migration (one that rewrites calls, or the rollup's own columns) is followed
# by summing it again from `llm_calls`, after the spans were decided again.
ROLLUP_AFTER = frozenset({"m013_hourly_rollup"})


class NewerSchemaError(Exception):
    """The database was written by a newer spendwatch: opening it here could damage it."""

    def __init__(self, migrations: list[str]) -> None:
        super().__init__(f"the database has migrations this spendwatch does not know: {', '.join(migrations)}")
