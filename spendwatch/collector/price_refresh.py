"""The daemon's price refresh: genai-prices' `UpdatePrices`, fetching from the config's URL on its schedule.

genai-prices runs one background thread per process for every `UpdatePrices`; this subclass only changes
what one fetch does: it asks with the last ETag (a file that has not changed is not downloaded again),
records the data's version and source (`price_data`), keeps a copy beside the database, and tells the
daemon when new data is in force so that the calls no data knew are priced again. A failed fetch leaves
the data in force as it was, and is logged without the URL's query or the server's words.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genai_prices import UpdatePrices

from spendwatch.collector import price_data
from spendwatch.collector.price_data import PriceData, shown_url
from spendwatch.collector.repricing import reprice_calls

if TYPE_CHECKING:
    from spendwatch.collector.ingest import Ingest
    from spendwatch.collector.store import Store
    from spendwatch.collector.writer import Writer

logger = logging.getLogger("spendwatch.collector")


class PriceFetchError(Exception):
    """A fetch that failed, said without the URL or the server's words (either may carry a credential)."""


@dataclass
class PriceRefresher(UpdatePrices):
    """genai-prices' scheduled update, fetching from `url` and telling the daemon about each new data set.

    `cache_file` keeps the last file fetched; `on_update(data)` runs on the refresh thread once new data
    is in force (the daemon reprices the calls no data knew, then).
    """

    cache_file: Path | None = None
    on_update: Callable[[PriceData], None] | None = None
    attempts: int = 0
    updates: int = 0
    last_attempt_at: datetime | None = None
    last_error: str | None = None
    _etag: str | None = None

    def fetch(self) -> Any:
        import httpx2

        self.attempts += 1
        self.last_attempt_at = datetime.now(UTC)
        ours = price_data.installed()
        headers = {"if-none-match": self._etag} if self._etag and ours is not None else {}
        try:
            response = httpx2.get(self.url, timeout=self.request_timeout, headers=headers, follow_redirects=True)
            if response.status_code == 304 and ours is not None:
                self.last_error = None
                return ours.snapshot
            response.raise_for_status()
            data = price_data.parse(response.content, self.url, self.last_attempt_at)
        except Exception as error:
            self.last_error = type(error).__name__
            logger.warning(
                "price data: fetching %s failed (%s); pricing with %s",
                shown_url(self.url),
                type(error).__name__,
                price_data.current().version,
            )
            raise PriceFetchError(f"fetching price data failed ({type(error).__name__})") from None
        self.last_error = None
        self._etag = response.headers.get("etag")
        changed = ours is None or ours.version != data.version
        if not changed:
            return ours.snapshot
        price_data.install(data)
        self.updates += 1
        logger.info("price data: %s from %s in force", data.version, shown_url(self.url))
        if self.cache_file is not None:
            price_data.save(self.cache_file, response.content, data, self.url)
        if self.on_update is not None:
            try:
                self.on_update(data)
            except Exception as error:  # the daemon's repricing: logged, never the refresh's failure
                logger.error("price data: acting on new data failed (%s)", error)
        return data.snapshot


class PriceRefresh:
    """Fresh price data on the config's schedule (collector/price_refresh.py), and the calls no data knew
    priced again as soon as new data — or a reloaded config — knows them."""

    def __init__(self, url: str | None, interval: timedelta, db: Path, writer: Writer, ingest: Ingest) -> None:
        self.url = url
        self.interval = interval
        self.writer = writer
        self.ingest = ingest
        self.cache_file = price_data.saved_file(db)
        self.refresher = None
        self.repriced = 0  # calls priced once data or a reloaded config knew them
        self.repricings = 0

    def start(self) -> None:
        if self.url is None:
            return
        # httpx2 logs every request's URL at INFO, genai-prices its URL when its settings change: a price
        # URL's query may carry a token, so both say only warnings and errors (ours say what they need).
        for name in ("httpx2", "genai-prices"):
            logging.getLogger(name).setLevel(logging.WARNING)
        threading.Thread(target=self._start, name="spendwatch-prices", daemon=True).start()

    def _start(self) -> None:
        saved = price_data.load_saved(self.cache_file, self.url)
        if saved is not None:  # the last data fetched, until the first fetch says otherwise
            price_data.install(saved)
            logger.info("price data: %s (fetched %s) in force", saved.version, saved.fetched_at.isoformat())
            self.reprice_unpriced()
        self.refresher = PriceRefresher(
            update_interval=self.interval.total_seconds(),
            url=self.url,
            cache_file=self.cache_file,
            on_update=lambda data: self.reprice_unpriced(),
        )
        self.refresher.start()

    def reprice_unpriced(self) -> None:
        """On the writer thread, between commits: the unpriced calls whose model has a price now."""

        def reprice(store: Store) -> int:
            changed, _ = reprice_calls(store.con, self.ingest.pricer, only_unpriced=True)
            return changed

        try:
            changed = self.writer.call(reprice).result()
        except Exception as error:
            logger.error("repricing the unpriced calls failed (%s)", error)
            return
        self.repriced += changed
        self.repricings += 1
        if changed:
            logger.info("priced %d stored call(s) that had no known price", changed)

    def stop(self) -> None:
        if self.refresher is not None:
            self.refresher.stop()

    def status(self) -> dict:
        data = price_data.current()
        refresher = self.refresher
        return {
            "version": data.version,
            "source": price_data.shown_url(data.source),
            "fetched_at": data.fetched_at.isoformat() if data.fetched_at else None,
            "refresh_url": price_data.shown_url(self.url) if self.url else None,
            "refresh_every_seconds": self.interval.total_seconds() if self.url else None,
            "refresh_attempts": refresher.attempts if refresher else 0,
            "refreshes": refresher.updates if refresher else 0,
            "last_attempt_at": refresher.last_attempt_at.isoformat()
            if refresher and refresher.last_attempt_at
            else None,
            "last_error": refresher.last_error if refresher else None,
            "repricings": self.repricings,
            "calls_repriced": self.repriced,
        }
