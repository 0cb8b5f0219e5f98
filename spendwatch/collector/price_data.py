"""Which price data prices the calls: genai-prices' bundled data, or fresher data fetched on a schedule.

Prices change more often than spendwatch is released (a new model, a price cut, a new tier), so the
daemon runs genai-prices' own `UpdatePrices` — one background thread, every `refresh` (1 hour by default)
— against a URL of the config's choosing (genai-prices' published data by default, or a mirror). Until a
fetch succeeds, and whenever one fails, the data in force stays what it was: the last data fetched, else
the bundled data, so the daemon prices offline as before.

Every priced row records the data that priced it (`price_data_version`, `price_data_source`): the
bundled data is `bundled-<genai-prices version>`; fetched data is `fetched-<first 12 hex digits of the
SHA-256 of the file>`, from its URL. The last file fetched is kept beside the database
(`<db>.prices.json`), so a restart without network prices with it, not with older bundled data.

No URL, query string or error text that could hold a credential is logged or shown: only the URL's
scheme, host and path, and the type of an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger("spendwatch.collector")

BUNDLED_SOURCE = "bundled"
DEFAULT_URL = "https://raw.githubusercontent.com/pydantic/genai-prices/refs/heads/main/prices/new_data/v2/data.json"
DEFAULT_REFRESH_SECONDS = 3600.0


@dataclass(frozen=True)
class PriceData:
    """One set of price data: its version, where it came from, and when it was fetched (None: bundled)."""

    version: str
    source: str
    fetched_at: datetime | None
    snapshot: Any = field(repr=False, compare=False, default=None)  # genai-prices' DataSnapshot


def bundled() -> PriceData:
    from genai_prices import __version__, data_snapshot

    return PriceData(f"bundled-{__version__}", BUNDLED_SOURCE, None, data_snapshot._bundled_snapshot())


_installed: PriceData | None = None  # the fetched data genai-prices uses now, when it is ours
_lock = threading.Lock()


def current() -> PriceData:
    """The data genai-prices prices with now, with its version and source."""
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    installed = _installed
    if installed is not None and installed.snapshot is snapshot:
        return installed
    if snapshot is data_snapshot._bundled_snapshot():
        return bundled()
    # Another part of the process set genai-prices' data (its own UpdatePrices): priced with, but unknown.
    return PriceData("unknown", "set by another genai-prices user in this process", None, snapshot)


def installed() -> PriceData | None:
    """The fetched data in force, if any."""
    return _installed


def install(data: PriceData) -> None:
    """Make `data` what genai-prices prices with (and what `current` describes)."""
    from genai_prices import data_snapshot

    global _installed
    with _lock:
        _installed = data
        data_snapshot.set_custom_snapshot(data.snapshot)


def reset() -> None:
    """Back to the bundled data."""
    from genai_prices import data_snapshot

    global _installed
    with _lock:
        _installed = None
        data_snapshot.set_custom_snapshot(None)


def shown_url(url: str) -> str:
    """A URL as it may be logged and shown: scheme, host and path, never credentials or a query."""
    parts = urlsplit(url)
    if not parts.scheme:
        return url.split("?", 1)[0]
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def parse(raw: bytes, url: str, fetched_at: datetime) -> PriceData:
    """Price data from the bytes of a genai-prices data file (a JSON array of providers), fetched from `url`
    (its source is the URL as it may be shown: a query may carry a token)."""
    from genai_prices import data_snapshot
    from genai_prices.types import _providers_from_raw  # what genai-prices' own fetch parses with

    payload = json.loads(raw)
    if not isinstance(payload, list):
        raise ValueError("expected a JSON array of providers")
    snapshot = data_snapshot.DataSnapshot(_providers_from_raw(payload), from_auto_update=True)
    version = "fetched-" + hashlib.sha256(raw).hexdigest()[:12]
    return PriceData(version, shown_url(url), fetched_at, snapshot)


def _url_id(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def save(path: Path, raw: bytes, data: PriceData, url: str) -> None:
    """Keep the file fetched from `url` (the URL itself only as a hash: its query may carry a token)."""
    assert data.fetched_at is not None
    meta = {"url_sha256": _url_id(url), "version": data.version, "fetched_at": data.fetched_at.isoformat()}
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            out.write(json.dumps(meta).encode() + b"\n" + raw)
        temporary.replace(path)
    except OSError as error:
        logger.warning("price data: cannot keep a copy in %s (%s)", path, error)
        with contextlib.suppress(OSError):
            temporary.unlink()


def load_saved(path: Path, url: str) -> PriceData | None:
    """The data last fetched from `url` and kept in `path`, or None (none kept, another URL, unreadable)."""
    try:
        head, _, raw = path.read_bytes().partition(b"\n")
        meta = json.loads(head)
        if meta.get("url_sha256") != _url_id(url):
            return None
        data = parse(raw, url, datetime.fromisoformat(meta["fetched_at"]))
    except FileNotFoundError:
        return None
    except Exception as error:
        logger.warning("price data: the copy in %s cannot be used (%s)", path, type(error).__name__)
        return None
    return data


def saved_file(db: Path) -> Path:
    return db.with_name(db.name + ".prices.json")
