"""Importing the providers' bills: only new or still-open buckets, each stream replaced from where it starts.

Incremental: per provider and stream (`usage/completions`, `costs`, `usage/messages`, ...),
`billing_imports.complete_through` says up to where the buckets are final; an import asks from there
(the first one from `[billing] since` ago, default 30 days; `--since` asks again from further back).
Providers revise recent buckets (late usage, costs settled later), so a day's bucket counts as final only
`FINAL_AFTER` after it ends: until then every import fetches it again.

Idempotent: a stream's answer replaces, in one transaction, every stored row of that stream from the
start it was asked from — rows of groups that vanished go too — so importing the same bill twice leaves
the same rows and sums. Keys are upserted by their id.

The fetching happens on the caller's thread, the writing through `write` — in the daemon, on its writer
thread between commits; from the CLI, on its own connection — so a slow admin API never holds up ingest.
Billed usage is priced when imported, by the `price` the caller hands in (the daemon's pricer, so that
billed and observed dollars come from the same rates), at half price for batch usage (both providers
bill batches at 50%).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any, TypeVar

from spendwatch.billing import anthropic, openai
from spendwatch.billing.client import AdminApiError, AdminClient
from spendwatch.billing.config import BillingConfig, ProviderBilling
from spendwatch.billing.rows import KeyRow, Stream, day_floor
from spendwatch.errors import UserError

logger = logging.getLogger("spendwatch.billing")

IMPORTERS: dict[str, ModuleType] = {"openai": openai, "anthropic": anthropic}
FINAL_AFTER = timedelta(days=2)
BATCH_DISCOUNT = 0.5

T = TypeVar("T")
Write = Callable[[Callable[[Any], T]], T]  # run a function on a writable DuckDB connection
# price(provider, model, at=, input_tokens=, output_tokens=, cache_read_tokens=, cache_write_tokens=): USD or
# None when unpriced — the collector's `Pricer.price_total`
Price = Callable[..., float | None]


@dataclass
class StreamReport:
    provider: str
    stream: str
    start: datetime
    buckets: int
    rows: int
    complete_through: datetime | None


@dataclass
class ImportReport:
    provider: str
    streams: list[StreamReport] = field(default_factory=list)
    keys: int = 0
    requests: int = 0
    error: str | None = None


class BillingImportError(UserError):
    """Some provider's bill could not be imported; what could be was written."""


def run_import(
    config: BillingConfig,
    write: Write,
    price: Price,
    *,
    now: datetime | None = None,
    since: timedelta | None = None,
    client_options: dict[str, Any] | None = None,
) -> list[ImportReport]:
    """Import every configured provider's bill; a provider that fails does not stop the others, and its
    one-line error is in its report (the caller says it: the CLI on stderr, the daemon in its log)."""
    now = now or datetime.now(UTC)
    reports = []
    for provider in config.providers:
        report = ImportReport(provider.name)
        try:
            _import_provider(provider, config, write, price, now, since, report, client_options or {})
        except (KeyError, TypeError, ValueError, AttributeError) as error:  # an answer not as documented
            error = AdminApiError(
                f"{provider.name} admin API: an answer not shaped as documented ({type(error).__name__})"
            )
            report.error = str(error)
            write(lambda con, name=provider.name, message=str(error): record_failure(con, name, message, now))
        except AdminApiError as error:
            report.error = str(error)
            write(lambda con, name=provider.name, message=str(error): record_failure(con, name, message, now))
        reports.append(report)
    return reports


def _import_provider(
    provider: ProviderBilling,
    config: BillingConfig,
    write: Write,
    price: Price,
    now: datetime,
    since: timedelta | None,
    report: ImportReport,
    client_options: dict[str, Any],
) -> None:
    importer = IMPORTERS[provider.name]
    state = write(lambda con: import_state(con, provider.name))
    default_start = day_floor(now - config.since)
    final = day_floor(now - FINAL_AFTER)
    with AdminClient(
        provider.name, provider.base_url, provider.admin_key, importer.auth_headers, **client_options
    ) as client:
        streams: list[Stream] = []
        try:
            for name in importer.STREAMS:
                start = day_floor(now - since) if since is not None else state.get(name) or default_start
                stream = importer.fetch(client, name, start, now)
                stream.complete_through = max(stream.start, final)
                for row in stream.usage:
                    if row.input_tokens is not None or row.output_tokens is not None:
                        cost = price(
                            row.provider,
                            row.model,
                            at=row.bucket_start,
                            input_tokens=row.input_tokens or 0,
                            output_tokens=row.output_tokens or 0,
                            cache_read_tokens=row.cache_read_tokens or 0,
                            cache_write_tokens=row.cache_write_tokens or 0,
                        )
                        row.cost_usd = (
                            None if cost is None else cost * (BATCH_DISCOUNT if row.service_tier == "batch" else 1)
                        )
                streams.append(stream)
            keys = importer.keys(client)
        finally:
            report.requests = client.requests
        write(lambda con: store(con, provider.name, streams, keys, now))
    report.keys = len(keys)
    report.streams = [
        StreamReport(provider.name, s.name, s.start, s.buckets, len(s.usage) + len(s.costs), s.complete_through)
        for s in streams
    ]
    logger.info(
        "billing import: %s, %d stream(s), %d row(s), %d key(s), %d request(s)",
        provider.name,
        len(streams),
        sum(len(s.usage) + len(s.costs) for s in streams),
        len(keys),
        report.requests,
    )


def import_state(con: Any, provider: str) -> dict[str, datetime]:
    rows = con.execute(
        "SELECT stream, complete_through FROM billing_imports WHERE provider = ? AND complete_through IS NOT NULL",
        [provider],
    ).fetchall()
    return {stream: moment.astimezone(UTC) for stream, moment in rows}


def record_failure(con: Any, provider: str, message: str, now: datetime) -> None:
    con.execute(
        """INSERT INTO billing_imports (provider, stream, last_run_at, last_error) VALUES (?, '*', ?, ?)
           ON CONFLICT (provider, stream) DO UPDATE SET last_run_at = excluded.last_run_at,
                                                       last_error = excluded.last_error""",
        [provider, now, message[:500]],
    )


_USAGE_COLUMNS = (
    "provider, source, bucket_start, bucket_end, model, provider_key_id, project_id, service_tier, requests, "
    "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, units, unit, cost_usd"
)
_COST_COLUMNS = "provider, bucket_start, bucket_end, grouping, line_item, model, project_id, provider_key_id, currency"


def store(con: Any, provider: str, streams: list[Stream], keys: list[KeyRow], now: datetime) -> None:
    """Replace each stream's rows from its start, upsert the keys, move each stream's mark: one transaction."""
    con.execute("BEGIN TRANSACTION")
    try:
        for stream in streams:
            if stream.name.startswith("usage/"):
                source = stream.name.removeprefix("usage/")
                con.execute(
                    "DELETE FROM billed_usage WHERE provider = ? AND source = ? AND bucket_start >= ?",
                    [provider, source, stream.start],
                )
                _insert(con, "billed_usage", _USAGE_COLUMNS, stream.usage, now)
            else:
                groupings = sorted({row.grouping for row in stream.costs}) or [_grouping_of(provider, stream.name)]
                con.execute(
                    "DELETE FROM billed_costs WHERE provider = ? AND grouping IN (SELECT unnest(?))"
                    " AND bucket_start >= ?",
                    [provider, groupings, stream.start],
                )
                _insert(con, "billed_costs", _COST_COLUMNS, stream.costs, now, amounts=True)
            con.execute(
                """INSERT INTO billing_imports (provider, stream, complete_through, last_run_at, last_error)
                   VALUES (?, ?, ?, ?, NULL)
                   ON CONFLICT (provider, stream) DO UPDATE SET complete_through = excluded.complete_through,
                       last_run_at = excluded.last_run_at, last_error = NULL""",
                [provider, stream.name, stream.complete_through, now],
            )
        con.execute("DELETE FROM billing_imports WHERE provider = ? AND stream = '*'", [provider])
        if keys:
            columns = ("provider_key_id", "name", "redacted_value", "hint", "project_id", "status")
            con.execute(
                f"""INSERT INTO billing_keys (provider, {", ".join(columns)}, imported_at)
                    SELECT ?, {", ".join("unnest(?)" for _ in columns)}, ?
                    ON CONFLICT (provider, provider_key_id) DO UPDATE SET name = excluded.name,
                        redacted_value = excluded.redacted_value, hint = excluded.hint,
                        project_id = excluded.project_id, status = excluded.status,
                        imported_at = excluded.imported_at""",
                [provider, *([getattr(key, column) for key in keys] for column in columns), now],
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _grouping_of(provider: str, stream: str) -> str:
    if provider == "openai":
        return ",".join(openai.KEY_COSTS_GROUPING if stream == "costs/api_key_id" else openai.COSTS_GROUPING)
    return ",".join(anthropic.COST_GROUPS)


def _insert(con: Any, table: str, columns: str, rows: list, now: datetime, amounts: bool = False) -> None:
    if not rows:
        return
    names = [name.strip() for name in columns.split(",")]
    values = [[getattr(row, name) for row in rows] for name in names]
    selects = [f"unnest(${index + 1})" for index in range(len(names))]
    if amounts:
        names.append("amount_usd")
        values.append([str(row.amount_usd) for row in rows])
        selects.append(f"CAST(unnest(${len(names)}) AS DECIMAL(38, 12))")
    names.append("imported_at")
    values.append(now)
    selects.append(f"${len(names)}")
    con.execute(f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(selects)}", values)


def summary(reports: list[ImportReport]) -> dict[str, Any]:
    """What `spendwatch billing import` prints, as JSON: per provider and stream, what was asked and what
    came back (`columns`, `rows`), and each provider's failure (`errors`)."""
    columns = ["provider", "stream", "from", "buckets", "rows", "final_through"]
    rows = []
    for report in reports:
        for stream in report.streams:
            rows.append(
                [
                    stream.provider,
                    stream.stream,
                    stream.start.date().isoformat(),
                    stream.buckets,
                    stream.rows,
                    stream.complete_through.date().isoformat() if stream.complete_through else None,
                ]
            )
    return {"columns": columns, "rows": rows, "errors": [report.error for report in reports if report.error]}
