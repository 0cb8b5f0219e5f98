"""One daemon at a time: a lease in the catalog's database, renewed by its holder, taken over when it lapses.

The holder maintains the table and evaluates the fleet's rules. It renews the lease every third of its
length; every other daemon tries to take it as often. A holder that dies stops renewing, and the lease is
free once it expires — so another daemon holds it within the lease's length plus a third of it
(20 s at the default 15 s). A holder that stops cleanly gives it up at once.

Expiry is on the database's clock (one clock for every daemon, whatever the hosts' say). Whether this
daemon still holds the lease is judged on its own monotonic clock from the moment it asked, with a
margin: a holder stalled past its lease stops acting before another can have begun.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import case, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from spendwatch.fleet.records import LEASES, database_now

logger = logging.getLogger("spendwatch.fleet")

SAFETY = 0.8  # act on at most this share of the lease after asking for it


class Lease:
    def __init__(
        self, engine: Engine, name: str, holder: str, length: timedelta, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder
        self.length = length.total_seconds()
        self._clock = clock
        self._valid_until = 0.0
        self.acquisitions = 0  # times this daemon became the holder

    @property
    def renew_every(self) -> float:
        return self.length / 3

    def held(self) -> bool:
        return self._clock() < self._valid_until

    def renew(self) -> bool:
        """Take the lease if it is free or ours, for another `length`; whether this daemon holds it now."""
        asked = self._clock()
        was_held = self.held()
        try:
            held = self._renew()
        except Exception as error:
            logger.warning("fleet: the lease could not be renewed (%s)", type(error).__name__)
            held = False
        self._valid_until = asked + self.length * SAFETY if held else 0.0
        if held and not was_held:
            self.acquisitions += 1
            logger.info("fleet: this daemon (%s) holds the lease %s", self.holder, self.name)
        elif was_held and not held:
            logger.warning("fleet: this daemon (%s) lost the lease %s", self.holder, self.name)
        return held

    def _renew(self) -> bool:
        with self.engine.begin() as conn:
            now = database_now(conn)
            taken = conn.execute(
                update(LEASES)
                .where(LEASES.c.name == self.name, or_(LEASES.c.holder == self.holder, LEASES.c.expires_at < now))
                .values(
                    holder=self.holder,
                    expires_at=now + self.length,
                    acquired_at=case((LEASES.c.holder == self.holder, LEASES.c.acquired_at), else_=now),
                )
            ).rowcount
            if taken:
                return True
            if conn.execute(select(LEASES.c.holder).where(LEASES.c.name == self.name)).first() is not None:
                return False
        try:
            with self.engine.begin() as conn:
                now = database_now(conn)
                conn.execute(
                    insert(LEASES).values(
                        name=self.name, holder=self.holder, expires_at=now + self.length, acquired_at=now
                    )
                )
            return True
        except IntegrityError:  # another daemon created it first
            return False

    def release(self) -> None:
        """Give the lease up now (a clean stop): another daemon takes it at its next try."""
        self._valid_until = 0.0
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(LEASES)
                    .where(LEASES.c.name == self.name, LEASES.c.holder == self.holder)
                    .values(expires_at=0.0)
                )
        except Exception as error:
            logger.warning("fleet: the lease could not be given up (%s); it lapses by itself", type(error).__name__)

    def current_holder(self) -> str | None:
        """Who holds the lease now, by the database's clock (None: nobody)."""
        with self.engine.begin() as conn:
            now = database_now(conn)
            row = conn.execute(select(LEASES.c.holder, LEASES.c.expires_at).where(LEASES.c.name == self.name)).first()
        return row[0] if row is not None and row[1] > now else None
