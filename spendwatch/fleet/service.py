"""The fleet inside `spendwatch up`: the sink's batches, the lease, and the holder's duties, on threads.

Three threads, so that none waits on another: the sink appends a batch every `every`; the lease thread
renews or tries to take the lease every third of its length; the holder thread, while the lease is
held, maintains the table every `maintain_every`, ticks each fleet rule at its own `every` and
delivers the fleet alerts due. Nothing here can stop ingest: a catalog or storage that cannot be reached
is logged, counted in the status, and tried again with backoff, while the database keeps every call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from spendwatch.fleet.settings import FleetConfig
from spendwatch.fleet.sink import FleetSink, SinkStopped
from spendwatch.fleet.table import short_error
from spendwatch.rules.alerts import Send
from spendwatch.rules.config import RulesConfig

if TYPE_CHECKING:
    import duckdb

logger = logging.getLogger("spendwatch.fleet")

MAX_BACKOFF_SECONDS = 300.0
DELIVERY_EVERY = timedelta(seconds=10)
LEASE_NAME = "maintenance"


class Fleet:
    def __init__(
        self,
        connection: Callable[[], duckdb.DuckDBPyConnection],
        settings: FleetConfig,
        rules: RulesConfig,
        send: Send,
        *,
        local_retention: timedelta | None = None,
    ) -> None:
        self.settings = settings
        self.sink = FleetSink(connection, settings, local_retention=local_retention)
        self._rules_config = rules
        self._send = send
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.lease = None
        self.fleet_rules = None
        self.maintenance_rounds = 0
        self.last_maintenance: dict[str, int] = {}
        self._next_tick: dict[str, float] = {}

    # -- life -----------------------------------------------------------------------------------------

    def start(self) -> None:
        for target, name in ((self._sink_loop, "spendwatch-fleet-sink"), (self._lease_loop, "spendwatch-fleet-lease")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the threads, and give the lease up so that another daemon takes over at once."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        if self.lease is not None and self.lease.held():
            self.lease.release()

    def reload(self, rules: RulesConfig) -> None:
        """SIGHUP: the fleet rules change at their next tick; the table and the sink stay."""
        self._rules_config = rules
        if self.fleet_rules is not None:
            self._make_rules()

    def status(self) -> dict[str, Any]:
        sink = self.sink
        return {
            "fleet_daemon": sink.daemon,
            "fleet_table": self.settings.table,
            "fleet_batches": sink.batches,
            "fleet_rows_appended": sink.rows_appended,
            "fleet_hours_replaced": sink.hours_replaced,
            "fleet_failures": sink.failures,
            "fleet_last_error": sink.stopped_error or sink.last_error,
            "fleet_lease_held": bool(self.lease is not None and self.lease.held()),
            "fleet_lease_acquisitions": self.lease.acquisitions if self.lease is not None else 0,
            "fleet_maintenance_rounds": self.maintenance_rounds,
            "fleet_rule_evaluations": self.fleet_rules.evaluations if self.fleet_rules is not None else 0,
            "fleet_alerts_raised": self.fleet_rules.alerts_raised if self.fleet_rules is not None else 0,
            "fleet_deliveries": self.fleet_rules.deliveries if self.fleet_rules is not None else 0,
        }

    # -- the sink -------------------------------------------------------------------------------------

    def _sink_loop(self) -> None:
        every = self.settings.every.total_seconds()
        wait = 0.0
        failures = 0
        while not self._stop.wait(wait):
            try:
                self.sink.run_once()
                failures = 0
                wait = every
            except SinkStopped as error:
                logger.error("fleet: appending stopped: %s", error)
                return
            except Exception as error:
                failures += 1
                wait = min(every * 2**failures, MAX_BACKOFF_SECONDS)
                logger.warning(
                    "fleet: a batch failed (%s: %s); the calls stay in the database, next try in %.0f s",
                    type(error).__name__,
                    short_error(error),
                    wait,
                )

    # -- the lease and the holder's duties ------------------------------------------------------------

    def _lease_loop(self) -> None:
        from spendwatch.fleet.lease import Lease
        from spendwatch.fleet.records import create_tables

        while self.sink.daemon is None or self.sink.catalog is None:  # the sink opens the catalog
            if self._stop.wait(0.2):
                return
        try:
            create_tables(self.sink.catalog.engine)
        except Exception as error:
            logger.error("fleet: the lease's table cannot be created (%s); no maintenance or fleet rules", error)
            return
        self.lease = Lease(self.sink.catalog.engine, LEASE_NAME, self.sink.daemon, self.settings.lease)
        holder = threading.Thread(target=self._holder_loop, name="spendwatch-fleet-holder", daemon=True)
        holder.start()
        self._threads.append(holder)
        while not self._stop.is_set():
            self.lease.renew()
            self._stop.wait(self.lease.renew_every)

    def _make_rules(self) -> None:
        from spendwatch.fleet.rules import FleetRules

        self.fleet_rules = FleetRules(
            self.settings, self._rules_config, self.sink.catalog.engine, self.sink.daemon, self._send
        )

    def _holder_loop(self) -> None:
        self._make_rules()
        next_maintenance = 0.0
        next_delivery = 0.0
        while not self._stop.wait(0.25):
            if not self.lease.held():
                next_maintenance = 0.0  # a new holder maintains first thing
                continue
            clock = time.monotonic()
            now = datetime.now(UTC)
            for rule in list(self.fleet_rules.rules):
                if not self.lease.held() or self._stop.is_set():
                    break
                if clock >= self._next_tick.get(rule.name, 0.0):
                    self._next_tick[rule.name] = clock + rule.every.total_seconds()
                    self._guarded(
                        f"fleet rule {rule.name!r}",
                        lambda rule=rule, now=now: self.fleet_rules.tick(rule, now, self._table()),
                    )
                    next_delivery = 0.0
            if self.lease.held() and clock >= next_delivery:
                next_delivery = clock + DELIVERY_EVERY.total_seconds()
                self._guarded("fleet alert deliveries", lambda: self.fleet_rules.deliver(datetime.now(UTC)))
            if self.lease.held() and clock >= next_maintenance:
                next_maintenance = clock + self.settings.maintain_every.total_seconds()
                self._guarded("fleet maintenance", self._maintain)

    def _table(self):
        """The shared table, through the sink's catalog (one connection pool for the daemon's fleet)."""
        from spendwatch.fleet.table import load_table

        return load_table(self.sink.catalog, self.settings)

    def _maintain(self) -> None:
        from dataclasses import asdict

        from spendwatch.fleet.maintenance import maintain

        done = maintain(self._table(), self.settings, datetime.now(UTC), self.lease.held)
        self.last_maintenance = asdict(done)
        self.maintenance_rounds += 1

    def _guarded(self, what: str, work: Callable[[], Any]) -> None:
        try:
            work()
        except Exception as error:
            logger.warning("%s failed (%s: %s)", what, type(error).__name__, short_error(error))
