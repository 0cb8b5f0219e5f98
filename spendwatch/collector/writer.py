"""The one thread that writes the database, and the bounded queue in front of it.

Receivers decode and price on their own threads, then hand rows here and wait: an export is answered
only after its rows are committed. Several waiting batches are committed in one transaction. The queue
is bounded by the spans it holds (`max_queued_spans`): when the writer falls behind, `submit` fails at
once with `Overloaded` and the receiver answers with OTLP's retryable status (HTTP 503 with Retry-After,
gRPC UNAVAILABLE), so memory stays bounded and exporters deliver later.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any

import duckdb

from spendwatch.collector.rows import SpanLink
from spendwatch.collector.store import Store

logger = logging.getLogger("spendwatch.collector")

MAX_QUEUED_BATCHES = 1024
MAX_ROWS_PER_COMMIT = 50_000
DEFAULT_MAX_QUEUED_SPANS = 50_000


# Errors that come from the rows themselves (a value the column cannot take), not from the disk or the
# file: the commit is retried export by export and row by row, and only the rows that fail alone are
# refused. Anything else fails the commit, retryably.
DATA_ERRORS = (duckdb.DataError, duckdb.InvalidInputException, TypeError, ValueError, OverflowError)


class Overloaded(Exception):
    pass


@dataclass
class _Batch:
    """One export's share of a commit: its rows, the parent links of its other spans, its dropped names."""

    rows: list
    links: list[SpanLink]
    dropped_attributes: Counter

    @property
    def size(self) -> int:
        return len(self.rows) + len(self.links)


@dataclass(frozen=True)
class Written:
    """What a commit did with one export's rows: how many were new (None: not known apart from the
    other exports committed with them) and how many were refused as unstorable."""

    inserted: int | None
    refused: int


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
        # Held while a write is in its transaction: a reader that takes it sees every write before it
        # committed and none half-way (collector/tally.py counts calls from such a snapshot).
        self.commit_lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    @property
    def queued_spans(self) -> int:
        """Spans handed in and not committed yet."""
        return self._queued_spans

    def healthy(self) -> bool:
        """Ready for exports: the writer runs, its last commit (if any) succeeded and its queue has room."""
        return (
            self._thread.is_alive()
            and not self.last_write_failed
            and self._queued_spans < self.max_queued_spans
            and not self._queue.full()
        )

    def submit(
        self,
        rows: Sequence[Sequence[Any]],
        links: Sequence[SpanLink] = (),
        dropped_attributes: Counter | None = None,
    ) -> Future:
        """Queue rows (and the parent links and dropped attribute names of the same export) for the next
        commit; the future's result is a `Written`."""
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
            with self.commit_lock:
                inserted = self.store.write(rows, links, dropped)
        except DATA_ERRORS as error:
            # Something in the rows themselves: the other exports in this commit are not to pay for it.
            # Only the error's type: its message may quote a value from a span.
            logger.warning(
                "a commit of %d calls was refused (%s); storing each export apart", len(rows), type(error).__name__
            )
            self._commit_apart(batches)
            return
        except Exception as error:
            self._failed(batches, len(rows), error)
            return
        self.last_write_failed = False
        self.stored += inserted
        self.duplicates += len(rows) - inserted
        for _, future in batches:
            _settle(future, Written(inserted if len(batches) == 1 else None, 0))

    def _commit_apart(self, batches: list[tuple[_Batch, Future]]) -> None:
        """Each export in its own commit; in an export that still fails, each row alone, and the bad ones refused."""
        for batch, future in batches:
            try:
                inserted, refused = self._write_isolating(batch)
            except Exception as error:  # not the data after all (the disk, the file): retryable, as any failure
                self._failed([(batch, future)], len(batch.rows), error)
                continue
            self.last_write_failed = False
            self.stored += inserted
            self.duplicates += len(batch.rows) - refused - inserted
            _settle(future, Written(inserted, refused))

    def _write_isolating(self, batch: _Batch) -> tuple[int, int]:
        try:
            with self.commit_lock:
                return self.store.write(batch.rows, batch.links, batch.dropped_attributes), 0
        except DATA_ERRORS:
            self.store.recover()
        with self.commit_lock:
            self.store.write([], batch.links, batch.dropped_attributes)
        inserted = refused = 0
        for row in batch.rows:
            try:
                with self.commit_lock:
                    inserted += self.store.write([row])
            except DATA_ERRORS as error:
                logger.warning("refused a call that cannot be stored (%s)", type(error).__name__)
                refused += 1
                self.store.recover()
        return inserted, refused

    def _failed(self, batches: list[tuple[_Batch, Future]], rows: int, error: Exception) -> None:
        self.last_write_failed = True
        logger.error("writing %d calls failed: %s; exporters will retry", rows, error)
        for _, future in batches:
            _fail(future, error)
        try:
            self.store.recover()
        except Exception as reopen_error:  # the next write will fail and try again
            logger.error("reopening the database failed: %s", reopen_error)

    def _run_call(self, function: Callable[[Store], Any], future: Future) -> None:
        try:
            with self.commit_lock:
                result = function(self.store)
            _settle(future, result)
        except Exception as error:
            _fail(future, error)


def _settle(future: Future, result: Any) -> None:
    with contextlib.suppress(InvalidStateError):  # a future its waiter cancelled: nothing to tell
        future.set_result(result)


def _fail(future: Future, error: BaseException) -> None:
    with contextlib.suppress(InvalidStateError):
        future.set_exception(error)
