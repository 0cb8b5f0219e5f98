"""Billed against observed: per UTC day, provider, model and key, what the provider billed and what
spendwatch saw of it — tokens, dollars, the capture rate and the gap.

Observed is `llm_calls` (each call once), for the providers with an imported bill; billed is
`billed_usage`, priced at import with the same rates as the calls. The two sides meet on the day, the
provider, the model and the key: a provider key is mapped to a spendwatch key id by the config's
`[billing.<provider>] keys`, else by its redacted value's last four characters against the hints of the
keys observed in the period — only where exactly one provider key and one observed key share that hint,
and never onto a key the config maps, so that no observed call is ever counted against two billed keys.
A provider key left unmatched still shows, by its own id: billed, with nothing observed.

The capture rate is observed dollars over billed dollars (tokens where the billed model has no price);
the gap is billed minus observed dollars. Billed usage spendwatch cannot price (images, audio, a model it
does not know) has no dollars in a row; the totals count such groups in `unpriced_groups`. The
provider's own dollars (`billed_costs`) come beside the totals per provider, as the check on the pricing.
Every query returns only plain types (days as text), so it reads the same through the daemon's read API,
a read-only file or a rule's cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

Query = Callable[[str, Sequence[Any]], list[Sequence[Any]]]

# Who counts as observed: model calls that reported usage (a refused request is not billed).
_PARAMS = """
    params AS (
        SELECT CAST(? AS TIMESTAMPTZ) AS since, CAST(? AS TIMESTAMPTZ) AS until,
               CAST(? AS VARCHAR[]) AS map_providers, CAST(? AS VARCHAR[]) AS map_provider_keys,
               CAST(? AS VARCHAR[]) AS map_key_ids
    ),
    explicit AS (
        SELECT unnest(map_providers) AS provider, unnest(map_provider_keys) AS provider_key_id,
               unnest(map_key_ids) AS api_key_id
        FROM params
    ),
    billed_providers AS (SELECT DISTINCT provider FROM billing_imports),
    observed_calls AS MATERIALIZED (
        SELECT DATE '1970-01-01' + CAST(epoch_us(start_time) // 86400000000 AS INTEGER) AS day, provider, model,
               api_key_id, api_key_hint, input_tokens, output_tokens, cost_usd
        FROM llm_calls
        WHERE start_time >= (SELECT since FROM params) AND start_time < (SELECT until FROM params)
          AND provider IN (SELECT provider FROM billed_providers)
          AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)
    ),
    billed_rows AS MATERIALIZED (
        SELECT CAST(bucket_start AS DATE) AS day, provider, model, provider_key_id, requests, input_tokens,
               output_tokens, cost_usd
        FROM billed_usage
        WHERE bucket_start >= (SELECT since FROM params) AND bucket_start < (SELECT until FROM params)
          AND (requests IS NOT NULL OR input_tokens IS NOT NULL)
    ),
    provider_keys AS (
        SELECT provider, provider_key_id FROM billing_keys
        UNION SELECT provider, provider_key_id FROM billed_rows WHERE provider_key_id IS NOT NULL
        UNION SELECT provider, provider_key_id FROM explicit
    ),
    hint_holders AS (
        SELECT provider, hint, count(*) AS holders FROM billing_keys WHERE hint IS NOT NULL GROUP BY ALL
    ),
    observed_hints AS (
        SELECT provider, api_key_hint AS hint, count(DISTINCT api_key_id) AS holders, min(api_key_id) AS api_key_id
        FROM observed_calls
        WHERE api_key_hint IS NOT NULL AND api_key_id IS NOT NULL
          AND api_key_id NOT IN (SELECT api_key_id FROM explicit)
        GROUP BY ALL
    ),
    keymap AS (
        SELECT p.provider, p.provider_key_id, k.name, k.redacted_value,
               coalesce(e.api_key_id, CASE WHEN h.holders = 1 AND o.holders = 1 THEN o.api_key_id END) AS api_key_id,
               CASE WHEN e.api_key_id IS NOT NULL THEN 'config'
                    WHEN h.holders = 1 AND o.holders = 1 THEN 'hint'
                    WHEN h.holders > 1 OR o.holders > 1 THEN 'ambiguous hint'
               END AS matched_by
        FROM provider_keys AS p
        LEFT JOIN billing_keys AS k USING (provider, provider_key_id)
        LEFT JOIN explicit AS e USING (provider, provider_key_id)
        LEFT JOIN hint_holders AS h ON h.provider = p.provider AND h.hint = k.hint
        LEFT JOIN observed_hints AS o ON o.provider = p.provider AND o.hint = k.hint
    ),
    billed AS (
        SELECT b.day, b.provider, b.model, coalesce(m.api_key_id, '~' || b.provider_key_id, '~') AS match_key,
               any_value(m.api_key_id) AS api_key_id, any_value(b.provider_key_id) AS provider_key_id,
               sum(b.requests) AS requests, sum(b.input_tokens) AS input_tokens,
               sum(b.output_tokens) AS output_tokens, sum(b.cost_usd) AS cost_usd,
               count(*) FILTER (b.cost_usd IS NULL AND b.input_tokens IS NOT NULL) AS unpriced_rows
        FROM billed_rows AS b LEFT JOIN keymap AS m USING (provider, provider_key_id)
        GROUP BY b.day, b.provider, b.model, match_key
    ),
    observed AS (
        SELECT day, provider, model, coalesce(api_key_id, '~') AS match_key, any_value(api_key_id) AS api_key_id,
               count(*) AS calls, coalesce(sum(input_tokens), 0) AS input_tokens,
               coalesce(sum(output_tokens), 0) AS output_tokens, sum(cost_usd) AS cost_usd
        FROM observed_calls GROUP BY day, provider, model, match_key
    ),
    joined AS (
        SELECT coalesce(b.day, o.day) AS day, coalesce(b.provider, o.provider) AS provider,
               coalesce(b.model, o.model) AS model, coalesce(b.match_key, o.match_key) AS match_key,
               coalesce(b.api_key_id, o.api_key_id) AS api_key_id, b.provider_key_id,
               b.requests AS billed_requests, coalesce(o.calls, 0) AS observed_calls,
               coalesce(b.input_tokens, 0) AS billed_input_tokens, coalesce(o.input_tokens, 0) AS observed_input_tokens,
               coalesce(b.output_tokens, 0) AS billed_output_tokens,
               coalesce(o.output_tokens, 0) AS observed_output_tokens,
               CASE WHEN b.match_key IS NULL THEN 0.0 WHEN b.unpriced_rows = 0 THEN b.cost_usd END AS billed_cost_usd,
               coalesce(o.cost_usd, 0.0) AS observed_cost_usd
        FROM billed AS b FULL OUTER JOIN observed AS o
          ON o.day = b.day AND o.provider = b.provider AND o.model IS NOT DISTINCT FROM b.model
         AND o.match_key = b.match_key
    )
"""

ROW_COLUMNS = (
    "day",
    "provider",
    "model",
    "api_key_id",
    "provider_key_id",
    "billed_requests",
    "observed_calls",
    "billed_input_tokens",
    "observed_input_tokens",
    "billed_output_tokens",
    "observed_output_tokens",
    "billed_cost_usd",
    "observed_cost_usd",
    "capture_rate",
    "token_capture_rate",
    "gap_usd",
)
_CAPTURE = """
    CASE WHEN {billed_cost} > 0 THEN {observed_cost} / {billed_cost}
         WHEN {billed_tokens} > 0 THEN {observed_tokens} / {billed_tokens} END
"""


def _capture(prefix: str = "") -> str:
    return _CAPTURE.format(
        billed_cost=f"{prefix}billed_cost_usd",
        observed_cost=f"{prefix}observed_cost_usd",
        billed_tokens=f"({prefix}billed_input_tokens + {prefix}billed_output_tokens)",
        observed_tokens=f"({prefix}observed_input_tokens + {prefix}observed_output_tokens)",
    )


ROWS_SQL = f"""
    WITH {_PARAMS}
    SELECT CAST(day AS VARCHAR) AS day, provider, model, api_key_id, provider_key_id, billed_requests,
           observed_calls, billed_input_tokens, observed_input_tokens, billed_output_tokens, observed_output_tokens,
           billed_cost_usd, observed_cost_usd, {_capture()} AS capture_rate,
           CASE WHEN billed_input_tokens + billed_output_tokens > 0
                THEN (observed_input_tokens + observed_output_tokens) / (billed_input_tokens + billed_output_tokens)
           END AS token_capture_rate,
           billed_cost_usd - observed_cost_usd AS gap_usd
    FROM joined
    ORDER BY day DESC, gap_usd DESC NULLS LAST, provider, model, match_key
"""

# Per provider key (and observed key the bill does not name), over the period: what `billing keys` lists
# and what the missing-key alert reads. `observed_calls` counts the calls of the key it is mapped to.
KEYS_SQL = f"""
    WITH {_PARAMS},
    billed_keys AS (
        SELECT provider, provider_key_id, sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)) AS tokens,
               sum(requests) AS requests, coalesce(sum(cost_usd), 0.0) AS cost_usd,
               count(*) FILTER (cost_usd IS NULL) AS unpriced_rows,
               CAST(min(day) AS VARCHAR) AS first_day, CAST(max(day) AS VARCHAR) AS last_day
        FROM billed_rows WHERE provider_key_id IS NOT NULL GROUP BY ALL
    ),
    provider_dollars AS (
        SELECT provider, provider_key_id, sum(amount_usd) AS amount
        FROM billed_costs
        WHERE grouping = 'api_key_id' AND provider_key_id IS NOT NULL
          AND bucket_start >= (SELECT since FROM params) AND bucket_start < (SELECT until FROM params)
        GROUP BY ALL
    ),
    observed_keys AS (
        SELECT provider, api_key_id, count(*) AS calls, sum(cost_usd) AS cost_usd
        FROM observed_calls WHERE api_key_id IS NOT NULL GROUP BY ALL
    )
    SELECT m.provider, m.provider_key_id, m.name, m.redacted_value, m.api_key_id, m.matched_by,
           coalesce(b.tokens, 0) AS billed_tokens, b.requests AS billed_requests,
           coalesce(b.cost_usd, 0.0) AS billed_cost_usd, coalesce(b.unpriced_rows, 0) AS unpriced_rows,
           CAST(d.amount AS DOUBLE) AS provider_cost_usd,
           coalesce(o.calls, 0) AS observed_calls, coalesce(o.cost_usd, 0.0) AS observed_cost_usd,
           b.first_day, b.last_day
    FROM keymap AS m
    LEFT JOIN billed_keys AS b USING (provider, provider_key_id)
    LEFT JOIN provider_dollars AS d USING (provider, provider_key_id)
    LEFT JOIN observed_keys AS o ON o.provider = m.provider AND o.api_key_id = m.api_key_id
    ORDER BY (coalesce(b.tokens, 0) > 0 AND coalesce(o.calls, 0) = 0) DESC, billed_cost_usd DESC NULLS FIRST,
             m.provider, m.provider_key_id
"""
KEY_COLUMNS = (
    "provider",
    "provider_key_id",
    "name",
    "redacted_value",
    "api_key_id",
    "matched_by",
    "billed_tokens",
    "billed_requests",
    "billed_cost_usd",
    "unpriced_rows",
    "provider_cost_usd",
    "observed_calls",
    "observed_cost_usd",
    "first_day",
    "last_day",
)

TOTALS_SQL = f"""
    WITH {_PARAMS},
    sums AS (
        SELECT provider, sum(billed_input_tokens + billed_output_tokens) AS billed_tokens,
               sum(observed_input_tokens + observed_output_tokens) AS observed_tokens,
               coalesce(sum(billed_cost_usd), 0.0) AS billed_cost_usd,
               count(*) FILTER (billed_cost_usd IS NULL) AS unpriced_groups,
               sum(observed_cost_usd) AS observed_cost_usd, sum(observed_calls) AS observed_calls
        FROM joined GROUP BY provider
    ),
    invoiced AS (
        SELECT provider, sum(amount_usd) AS amount
        FROM billed_costs
        WHERE grouping <> 'api_key_id'
          AND bucket_start >= (SELECT since FROM params) AND bucket_start < (SELECT until FROM params)
        GROUP BY provider
    )
    SELECT s.provider, s.billed_tokens, s.observed_tokens, s.observed_calls, s.billed_cost_usd, s.unpriced_groups,
           CAST(i.amount AS DOUBLE) AS provider_cost_usd, s.observed_cost_usd,
           CASE WHEN s.billed_cost_usd > 0 THEN s.observed_cost_usd / s.billed_cost_usd
                WHEN s.billed_tokens > 0 THEN s.observed_tokens / s.billed_tokens END AS capture_rate,
           s.billed_cost_usd - s.observed_cost_usd AS gap_usd
    FROM sums AS s LEFT JOIN invoiced AS i USING (provider)
    ORDER BY s.provider
"""
TOTAL_COLUMNS = (
    "provider",
    "billed_tokens",
    "observed_tokens",
    "observed_calls",
    "billed_cost_usd",
    "unpriced_groups",
    "provider_cost_usd",
    "observed_cost_usd",
    "capture_rate",
    "gap_usd",
)


@dataclass(frozen=True)
class Period:
    since: datetime  # midnight UTC: billed buckets are UTC days
    until: datetime

    @classmethod
    def ending(cls, now: datetime, length: timedelta | None) -> Period:
        """Whole UTC days from `length` ago (None: since 2000) up to `now`."""
        start = datetime(2000, 1, 1, tzinfo=UTC) if length is None else (now - length).astimezone(UTC)
        return cls(start.replace(hour=0, minute=0, second=0, microsecond=0), now)


def params(period: Period, key_map: dict[str, dict[str, str]]) -> list[Any]:
    pairs = [
        (provider, provider_key, key_id) for provider, keys in key_map.items() for provider_key, key_id in keys.items()
    ]
    return [
        period.since,
        period.until,
        [pair[0] for pair in pairs],
        [pair[1] for pair in pairs],
        [pair[2] for pair in pairs],
    ]


@dataclass
class Reconciliation:
    period: Period
    rows: list[dict[str, Any]] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)
    totals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def missing_keys(self) -> list[dict[str, Any]]:
        """Provider keys with billed usage and no instrumented call in the period: called out first."""
        return [key for key in self.keys if key["billed_tokens"] > 0 and key["observed_calls"] == 0]


def reconcile(query: Query, period: Period, key_map: dict[str, dict[str, str]]) -> Reconciliation:
    values = params(period, key_map)
    result = Reconciliation(period)
    result.rows = [dict(zip(ROW_COLUMNS, row, strict=True)) for row in query(ROWS_SQL, values)]
    result.keys = [dict(zip(KEY_COLUMNS, row, strict=True)) for row in query(KEYS_SQL, values)]
    result.totals = [dict(zip(TOTAL_COLUMNS, row, strict=True)) for row in query(TOTALS_SQL, values)]
    missing = {(key["provider"], key["provider_key_id"]) for key in result.missing_keys}
    # the rows of keys billed and never observed come first
    result.rows.sort(key=lambda row: (row["provider"], row["provider_key_id"]) not in missing)
    return result


def document(result: Reconciliation) -> dict[str, Any]:
    """`spendwatch reconcile --format json`: one object, rows and per-key and per-provider sums kept apart."""
    return {
        "since": result.period.since.isoformat(),
        "until": result.period.until.isoformat(),
        "missing_keys": result.missing_keys,
        "rows": result.rows,
        "keys": result.keys,
        "totals": result.totals,
    }
