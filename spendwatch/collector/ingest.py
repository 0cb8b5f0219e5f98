"""What both receivers do with an export: turn its spans into rows and wait until they are committed."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any

from spendwatch.collector.attributes import KeepList
from spendwatch.collector.pricing import Pricer
from spendwatch.collector.spans import Counts, Extract, rows_from_request
from spendwatch.collector.writer import Writer

COMMIT_TIMEOUT_SECONDS = 30
logger = logging.getLogger("spendwatch.collector")


class Ingest:
    def __init__(self, writer: Writer, pricer: Pricer, keep: KeepList | None = None) -> None:
        self.writer = writer
        self.pricer = pricer
        self.keep = keep or KeepList()
        self.counts = Counts()
        self._lock = threading.Lock()
        self.other_signals = 0  # metric and log exports: acknowledged, not stored

    def export_traces(self, request: Any) -> None:
        """Returns once the request's calls are committed; raises `Overloaded` or the write's error."""
        counts = Counts()
        extract = Extract(links=[], dropped_attributes=Counter())
        rows = rows_from_request(request, self.pricer, counts, keep=self.keep, extract=extract)
        with self._lock:
            self.counts.received += counts.received
            self.counts.kept += counts.kept
            self.counts.dropped += counts.dropped
            self.counts.rejected += counts.rejected
        if counts.rejected:
            logger.warning("rejected %d span(s) with trace or span ids of the wrong length", counts.rejected)
        if rows or extract.links:
            self.writer.submit(rows, extract.links, extract.dropped_attributes).result(timeout=COMMIT_TIMEOUT_SECONDS)

    def export_other(self, request: Any) -> None:
        with self._lock:
            self.other_signals += 1
