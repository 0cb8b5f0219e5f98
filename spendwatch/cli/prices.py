"""Prices of the stored calls: `prices status`, `prices explain`, `prices missing`, `reprice`."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click

from spendwatch.cli.options import config_from, database, output_format, since
from spendwatch.errors import UserError


@click.group(help="Prices of stored calls.")
def prices() -> None:
    pass


@prices.command(help="Models with calls but no known price.")
@database
@output_format
def missing(db: str | None, config: str | None, output: str) -> int:
    from spendwatch.collector.maintenance import MISSING_PRICES_SQL
    from spendwatch.output import write_rows
    from spendwatch.reads import query

    columns, rows = query(config_from(db=db, config=config).db, MISSING_PRICES_SQL)
    write_rows(sys.stdout, columns, rows, output)
    return 0


@prices.command(help="The price data in force: its version, age and source, and how refreshing goes.")
@database
@output_format
def status(db: str | None, config: str | None, output: str) -> int:
    from spendwatch.collector import price_data
    from spendwatch.output import write_rows
    from spendwatch.reads import daemon_status

    settings = config_from(db=db, config=config)
    running = daemon_status(settings.db)
    if running is not None:
        facts = {"daemon": "running", **running["price_data"]}
    else:  # what a daemon started now would price with
        data = (
            price_data.load_saved(price_data.saved_file(settings.db), settings.prices_url or "") or price_data.bundled()
        )
        facts = {
            "daemon": "not running",
            "version": data.version,
            "source": price_data.shown_url(data.source),
            "fetched_at": data.fetched_at.isoformat() if data.fetched_at else None,
            "refresh_url": price_data.shown_url(settings.prices_url) if settings.prices_url else None,
            "refresh_every_seconds": settings.prices_refresh.total_seconds() if settings.prices_url else None,
        }
    fetched = facts.get("fetched_at")
    facts["age"] = _age(datetime.fromisoformat(fetched)) if fetched else "as released (bundled with genai-prices)"
    if output == "json":
        json.dump(facts, sys.stdout)
        sys.stdout.write("\n")
    else:
        write_rows(sys.stdout, ["what", "value"], list(facts.items()), output)
    return 0


def _age(at: datetime) -> str:
    seconds = max((datetime.now(UTC) - at).total_seconds(), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


_USAGE_NAMES = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cache_read": "cache_read_tokens",
    "cache_write": "cache_write_tokens",
    "reasoning": "reasoning_tokens",
}


def _attribute_names() -> dict[str, str]:
    from spendwatch import semconv

    return {
        "cache_write_5m": semconv.SPENDWATCH_USAGE_CACHE_WRITE_5M_TOKENS,
        "cache_write_1h": semconv.SPENDWATCH_USAGE_CACHE_WRITE_1H_TOKENS,
        "input_audio": semconv.SPENDWATCH_USAGE_INPUT_AUDIO_TOKENS,
        "input_image": semconv.SPENDWATCH_USAGE_INPUT_IMAGE_TOKENS,
        "cache_audio": semconv.SPENDWATCH_USAGE_CACHE_AUDIO_READ_TOKENS,
        "output_audio": semconv.SPENDWATCH_USAGE_OUTPUT_AUDIO_TOKENS,
        "output_image": semconv.SPENDWATCH_USAGE_OUTPUT_IMAGE_TOKENS,
        "web_searches": semconv.SPENDWATCH_USAGE_WEB_SEARCH_CALLS,
        "characters": semconv.SPENDWATCH_USAGE_INPUT_CHARACTERS,
        "audio_seconds": semconv.SPENDWATCH_USAGE_AUDIO_SECONDS,
    }


def parse_usage(text: str) -> tuple[dict[str, int], dict[str, Any]]:
    """`--usage input=1200,output=300,cache_read=1000,...`: token counts, and the attributes of the rest."""
    attributes_by_name = _attribute_names()
    tokens: dict[str, int] = {}
    attributes: dict[str, Any] = {}
    for item in text.split(","):
        name, _, value = item.strip().partition("=")
        if not name:
            continue
        known = sorted([*_USAGE_NAMES, *attributes_by_name])
        if name not in _USAGE_NAMES and name not in attributes_by_name:
            raise UserError(f"--usage: {name}: unknown; expected some of {', '.join(known)}")
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"--usage: {name}: expected a number, got {value!r}") from None
        if number < 0 or (name != "audio_seconds" and not number.is_integer()):
            raise UserError(f"--usage: {name}: expected a whole number >= 0, got {value!r}")
        if name in _USAGE_NAMES:
            tokens[_USAGE_NAMES[name]] = int(number)
        else:
            attributes[attributes_by_name[name]] = number if name == "audio_seconds" else int(number)
    if not tokens and not attributes:
        raise UserError("--usage: expected counts such as input=1200,output=300")
    lifetimes = sum(attributes.get(attributes_by_name[name], 0) for name in ("cache_write_5m", "cache_write_1h"))
    if lifetimes and "cache_write_tokens" not in tokens:
        tokens["cache_write_tokens"] = lifetimes  # the writes by lifetime are the cache writes
    return tokens, attributes


@prices.command(help="Each component of a call's price: by span id, or for a model and a usage.")
@database
@output_format
@click.argument("call_id", required=False)
@click.option("--model", help="a model to price (instead of a stored call)")
@click.option("--usage", "usage_text", help="with --model: input=N,output=N,cache_read=N,cache_write_1h=N,...")
@click.option("--provider", default="openai", show_default=True, help="with --model: the provider")
@click.option("--at", "at_text", help="with --model: when the call was made (ISO 8601; default now)")
@click.option("--tier", help="with --model: the service tier that served it (flex, priority, batch, ...)")
@click.option("--key", "api_key_id", help="with --model: the key id, for the discount rules")
def explain(
    db: str | None,
    config: str | None,
    output: str,
    call_id: str | None,
    model: str | None,
    usage_text: str | None,
    provider: str,
    at_text: str | None,
    tier: str | None,
    api_key_id: str | None,
) -> int:
    from spendwatch import semconv
    from spendwatch.collector.price_explain import explain as explain_price
    from spendwatch.collector.price_explain import explain_stored

    settings = config_from(db=db, config=config)
    pricer = settings.pricer()
    _load_saved_prices(settings)
    if (call_id is None) == (model is None):
        raise UserError("prices explain: give a CALL_ID (a span id), or --model with --usage")
    if call_id is not None:
        found = explain_stored(pricer, _stored_call(settings.db, call_id))
    else:
        if not usage_text:
            raise UserError("prices explain --model: --usage is missing (such as input=1200,output=300)")
        tokens, attributes = parse_usage(usage_text)
        if tier:
            attributes[semconv.SPENDWATCH_RESPONSE_SERVICE_TIER] = tier
        at = _parse_at(at_text)
        found = explain_price(
            pricer,
            provider,
            (model,),
            at=at,
            input_tokens=tokens.get("input_tokens"),
            output_tokens=tokens.get("output_tokens"),
            cache_read_tokens=tokens.get("cache_read_tokens"),
            cache_write_tokens=tokens.get("cache_write_tokens"),
            reasoning_tokens=tokens.get("reasoning_tokens"),
            attributes=attributes,
            api_key_id=api_key_id,
        )
    _write_explanation(found, output)
    return 0


def _load_saved_prices(settings: Any) -> None:
    """Price as the daemon does: with the data it last fetched, where it keeps a copy."""
    from spendwatch.collector import price_data

    if settings.prices_url:
        saved = price_data.load_saved(price_data.saved_file(settings.db), settings.prices_url)
        if saved is not None:
            price_data.install(saved)


def _parse_at(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--at: expected an ISO 8601 time such as 2026-12-01T12:00:00Z, got {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _stored_call(db: Any, call_id: str) -> Any:
    import re

    from spendwatch.collector.price_explain import CALL_SQL, StoredCall
    from spendwatch.reads import query

    trace_id, _, span_id = call_id.strip().rpartition(":")
    if not re.fullmatch(r"[0-9a-fA-F]{16}", span_id) or (trace_id and not re.fullmatch(r"[0-9a-fA-F]{32}", trace_id)):
        raise UserError(f"prices explain: {call_id!r} is not a span id (16 hex digits, or TRACE_ID:SPAN_ID)")
    _, rows = query(db, CALL_SQL, [span_id, trace_id or None, trace_id or None])
    if not rows:
        raise UserError(f"prices explain: no stored call has the span id {span_id}")
    if len(rows) > 1:
        traces = ", ".join(f"{row[0]}:{row[1]}" for row in rows[:5])
        raise UserError(f"prices explain: {len(rows)} calls have the span id {span_id}; give one of {traces}")
    row = list(rows[0])
    row[2] = row[2] if isinstance(row[2], datetime) else datetime.fromisoformat(row[2])
    row[11] = json.loads(row[11]) if isinstance(row[11], str) and row[11] else (row[11] or {})
    return StoredCall(*row)


def _write_explanation(found: Any, output: str) -> None:
    from spendwatch.output import write_rows

    summary = found.summary()
    components = [[part.name, part.quantity, part.rate, part.cost_usd] for part in found.components]
    if output == "json":
        columns = ("component", "quantity", "rate", "usd")
        parts = [dict(zip(columns, row, strict=True)) for row in components]
        json.dump({**summary, "components": parts, "notes": found.notes}, sys.stdout, default=str)
        sys.stdout.write("\n")
        return
    write_rows(sys.stdout, ["component", "quantity", "rate", "usd"], components, output)
    if output == "table":
        click.echo("")
        width = max(len(key) for key in summary)
        for key, value in summary.items():
            click.echo(f"{key.ljust(width)}  {'' if value is None else value}")
        for note in found.notes:
            click.echo(f"note: {note}")


@click.command(help="Recompute stored costs after a price override or update.")
@database
@click.option("--since", "period", default="30d", help="calls started within this long ago (e.g. 30d, 12h; 'all')")
def reprice(db: str | None, config: str | None, period: str) -> int:
    from spendwatch.collector.maintenance import reprice as reprice_calls

    settings = config_from(db=db, config=config)
    _load_saved_prices(settings)
    changed, total = reprice_calls(settings.db, settings.pricer(), since(period), progress=sys.stderr)
    click.echo(f"repriced {total} calls: {changed} changed cost")
    return 0


COMMANDS = (prices, reprice)
