"""What both receivers do with an export: turn its spans into rows, hand them to the writer, and say
what became of them — stored, or refused (with why) for OTLP's partial-success answer."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from spendwatch.collector.attributes import KeepList
from spendwatch.collector.attribution import AttributionConfig
from spendwatch.collector.pricing import Pricer, price_rows
from spendwatch.collector.spans import Counts, Extract, rows_from_request
from spendwatch.collector.writer import Writer, Written

COMMIT_TIMEOUT_SECONDS = 30
logger = logging.getLogger("spendwatch.collector")


@dataclass
class Outcome:
    """An export's spans that were refused, and a one-line reason for the exporter (empty when none)."""

    rejected: int = 0
    message: str = ""


class Ingest:
    def __init__(
        self,
        writer: Writer,
        pricer: Pricer,
        keep: KeepList | None = None,
        attribution: AttributionConfig | None = None,
    ) -> None:
        self.writer = writer
        self.pricer = pricer
        self.keep = keep or KeepList()
        self.attribution = attribution or AttributionConfig()
        self.counts = Counts()
        self._lock = threading.Lock()
        self.other_signals = 0  # metric and log exports: acknowledged, not stored
        self.forwarders: list[Any] = []  # collector/forward.py: each stored export is queued for each upstream

    def submit_traces(self, request: Any) -> tuple[Future | None, Counter[str]]:
        """Rows of the request queued for the writer (None when it has none), and why spans were refused.

        Raises `Overloaded` at once when the writer's queue is full.
        """
        counts = Counts()
        refusals: Counter[str] = Counter()
        extract = Extract(links=[], dropped_attributes=Counter())
        rows = price_rows(
            rows_from_request(request, counts, refusals, keep=self.keep, extract=extract, attribution=self.attribution),
            self.pricer,
        )
        with self._lock:
            self.counts.received += counts.received
            self.counts.kept += counts.kept
            self.counts.dropped += counts.dropped
            self.counts.rejected += counts.rejected
        if counts.rejected:
            logger.warning("refused %d span(s): %s", counts.rejected, _reasons(refusals))
        if not rows and not extract.links:
            return None, refusals
        return self.writer.submit(rows, extract.links, extract.dropped_attributes), refusals

    def outcome(self, refusals: Counter[str], written: Written | None) -> Outcome:
        """The export's answer once its rows are committed (`written` is None when it had none)."""
        if written is not None and written.refused:
            refusals = refusals + Counter({"a value the database cannot store": written.refused})
            with self._lock:
                self.counts.rejected += written.refused
        rejected = sum(refusals.values())
        return Outcome(rejected, f"{rejected} span(s) refused: {_reasons(refusals)}" if rejected else "")

    def export_traces(self, request: Any) -> Outcome:
        """Returns once the request's calls are committed; raises `Overloaded` or the write's error."""
        future, refusals = self.submit_traces(request)
        written = future.result(timeout=COMMIT_TIMEOUT_SECONDS) if future is not None else None
        self.stored(request)
        return self.outcome(refusals, written)

    def stored(self, request: Any) -> None:
        """The export is stored and about to be acknowledged: queue it for each upstream, so that an export
        is forwarded once for every time it is acknowledged (an exporter's retry of a failed one is not)."""
        if not self.forwarders:
            return
        costs = self._counted_costs(request)
        for forwarder in self.forwarders:
            try:
                forwarder.enqueue(request, self.keep, costs)
            except Exception as error:  # a full disk costs the upstream this export, never the local store
                logger.error("could not queue an export for %s: %s", forwarder.upstream.endpoint, error)

    def _counted_costs(self, request: Any) -> dict[tuple[bytes, bytes], float]:
        """The cost of each span of the export that `llm_calls` counts, as stored: what a forwarded span
        carries as `gen_ai.usage.cost.amount`. A span counted instead of another, or a sibling the store
        superseded, carries none, so that an upstream summing the attribute counts each call once."""
        ids = [
            (span.trace_id, span.span_id)
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        if not ids:
            return {}

        def read(store: Any) -> list[tuple[str, str, float]]:
            return store.con.execute(
                """SELECT trace_id, span_id, cost_usd FROM llm_calls
                   WHERE trace_id IN (SELECT unnest(?)) AND span_id IN (SELECT unnest(?)) AND cost_usd IS NOT NULL""",
                [sorted({trace.hex() for trace, _ in ids}), sorted({span.hex() for _, span in ids})],
            ).fetchall()

        try:
            found = self.writer.call(read).result(timeout=COMMIT_TIMEOUT_SECONDS)
        except Exception as error:  # the export is forwarded all the same, without costs
            logger.error("could not read the costs of a forwarded export: %s", error)
            return {}
        return {(bytes.fromhex(trace), bytes.fromhex(span)): cost for trace, span, cost in found}

    def export_other(self, request: Any) -> None:
        with self._lock:
            self.other_signals += 1


def _reasons(refusals: Counter[str]) -> str:
    return "; ".join(f"{count} {reason}" for reason, count in refusals.most_common())
