"""The daemon's billing import: at start-up, then every `[billing] every` (daily), with APScheduler.

One import at a time: the scheduled one and one the CLI asks for (`spendwatch billing import` while the
daemon runs) take the same lock. The fetching runs on the scheduler's thread; the writing goes through
the `write` the daemon hands in, onto its writer thread between commits.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from spendwatch.billing.config import BillingConfig
from spendwatch.billing.importer import Price, Write, run_import, summary
from spendwatch.errors import UserError

logger = logging.getLogger("spendwatch.billing")


class BillingSchedule:
    def __init__(self, config: BillingConfig, write: Write, price: Price) -> None:
        self.config = config
        self._write = write
        self._price = price
        self._lock = threading.Lock()
        self._scheduler = None
        self.runs = 0  # imports done: `spendwatch status` shows them, and tests wait on them
        self.failures = 0  # providers whose import failed, over all runs

    def start(self) -> None:
        if not self.config.providers:
            return
        from apscheduler.schedulers.background import BackgroundScheduler

        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._scheduler.add_job(
            self.run,
            "interval",
            seconds=self.config.every.total_seconds(),
            next_run_time=datetime.now(UTC),
            id="billing-import",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self._scheduler.start()
        names = ", ".join(provider.name for provider in self.config.providers)
        logger.info("billing: importing %s every %s", names, self.config.every)

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None

    def run(self, since: timedelta | None = None) -> dict[str, Any]:
        """Import now; what `billing import` prints. A provider's failure is logged and kept in the answer."""
        with self._lock:
            try:
                reports = run_import(self.config, self._write, self._price, since=since)
            except Exception:
                logger.exception("billing import failed")
                self.failures += 1
                return {"columns": [], "rows": [], "errors": ["the billing import failed: see the daemon's log"]}
            finally:
                self.runs += 1
        for report in reports:
            if report.error:
                self.failures += 1
                logger.error("billing import: %s", report.error)
        return summary(reports)

    def job(self, request: dict[str, Any]) -> dict[str, Any]:
        """The read API's `POST /jobs/billing-import`: `{"since_seconds": N | null}`."""
        if not self.config.providers:
            raise UserError(
                "the running daemon has no admin key to import a bill with: set OPENAI_ADMIN_KEY or "
                "ANTHROPIC_ADMIN_KEY (or [billing.<provider>] admin_key) for it, then restart or reload it"
            )
        seconds = request.get("since_seconds")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0):
            raise UserError("since_seconds: expected a number of seconds above 0")
        return self.run(timedelta(seconds=seconds) if seconds else None)
