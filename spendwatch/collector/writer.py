"""The one thread that writes the database, and the bounded queue in front of it.

Receivers decode and price on their own threads, then hand rows here and wait: an export is answered
only after its rows are committed. Several waiting batches are committed in one transaction. The queue
is bounded by the spans it holds (`max_queued_spans`): when the writer falls behind, `submit` fails at
once with `Overloaded` and the receiver answers with OTLP's retryable status (HTTP 503 with Retry-After,
gRPC UNAVAILABLE), so memory stays bounded and exporters deliver later.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from spendwatch.collector.rows import SpanLink
from spendwatch.collector.store import Store

logger = logging.getLogger("spendwatch.collector")

MAX_QUEUED_BATCHES = 1024
MAX_ROWS_PER_COMMIT = 50_000
DEFAULT_MAX_QUEUED_SPANS = 50_000


class Overloaded(Exception):
    pass


@dataclass
class _Batch:
    rows: list
    links: list[SpanLink]
    dropped_attributes: Counter

    @property
    def size(self) -> int:
        return len(self.rows) + len(self.links)


class Writer:
    def __init__(self, store: Store, max_queued_spans: int = DEFAULT_MAX_QUEUED_SPANS) -> None:
        self.store = store
        self.max_queued_spans = max_queued_spans
        self._queued_spans = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[Any, Future] | None] = queue.Queue(MAX_QUEUED_BATCHES)
        self._thread = threading.Thread(target=self._run, name="spendwatch-writer", daemon=True)
        self.stored = 0
        self.duplicates = 0
        self.last_write_failed = False

    def start(self) -> None:
        self._thread.start()

    def healthy(self) -> bool:
        """Ready for exports: the writer runs and its last commit (if any) succeeded."""
        return self._thread.is_alive() and not self.last_write_failed

    def submit(
        self,
        rows: Sequence[Sequence[Any]],
        links: Sequence[SpanLink] = (),
        dropped_attributes: Counter | None = None,
    ) -> Future:
        """Queue rows (and the parent links and dropped attribute names of the same export) for the next
        commit; the future's result is how many rows were new."""
        future: Future = Future()
        batch = _Batch(list(rows), list(links), dropped_attributes or Counter())
        with self._lock:
            if self._queued_spans and self._queued_spans + batch.size > self.max_queued_spans:
                raise Overloaded
            try:
                self._queue.put_nowait((batch, future))
            except queue.Full:
                raise Overloaded from None
            self._queued_spans += batch.size
        return future

    def call(self, function: Callable[[Store], Any]) -> Future:
        """Run `function(store)` on the writer thread, between commits (maintenance, repricing)."""
        future: Future = Future()
        self._queue.put((function, future))
        return future

    def stop(self) -> None:
        """Commit everything queued, then stop."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            work, future = item
            if callable(work):
                self._run_call(work, future)
                continue
            batches = [(work, future)]
            size = work.size
            stop_after = False
            while size < MAX_ROWS_PER_COMMIT:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop_after = True
                    break
                if callable(item[0]):
                    self._commit(batches)
                    batches, size = [], 0
                    self._run_call(*item)
                    continue
                batches.append(item)
                size += item[0].size
            self._commit(batches)
            if stop_after:
                return

    def _commit(self, batches: list[tuple[_Batch, Future]]) -> None:
        if not batches:
            return
        rows = [row for batch, _ in batches for row in batch.rows]
        links = [link for batch, _ in batches for link in batch.links]
        dropped: Counter = Counter()
        for batch, _ in batches:
            dropped.update(batch.dropped_attributes)
        with self._lock:
            self._queued_spans -= len(rows) + len(links)
        try:
            inserted = self.store.write(rows, links, dropped)
        except Exception as error:
            self.last_write_failed = True
            logger.error("writing %d calls failed: %s; exporters will retry", len(rows), error)
            for _, future in batches:
                future.set_exception(error)
            try:
                self.store.recover()
            except Exception as reopen_error:  # the next write will fail and try again
                logger.error("reopening the database failed: %s", reopen_error)
            return
        self.last_write_failed = False
        self.stored += inserted
        self.duplicates += len(rows) - inserted
        for _, future in batches:
            future.set_result(inserted)

    def _run_call(self, function: Callable[[Store], Any], future: Future) -> None:
        try:
            future.set_result(function(self.store))
        except Exception as error:
            future.set_exception(error)
