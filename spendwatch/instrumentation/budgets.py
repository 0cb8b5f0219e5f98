"""Budgets that stop a call: the daemon says which enforced budgets are spent; a call they cover is refused
before it is sent, with `BudgetExceeded`.

The daemon serves the state of its `enforce = true` budget rules at `GET /v1/spendwatch/budgets` on its
OTLP/HTTP port. A background thread here reads it every few seconds (the rules' own period), so the
request path makes no network call: checking a call is a few dictionary lookups, and nothing at all
while no budget is spent.

When the daemon cannot be reached, or its last answer is older than `SPENDWATCH_BUDGET_MAX_AGE` seconds
(default 60), the state is unknown: calls go through (fail-open), unless `SPENDWATCH_ENFORCE=fail-closed`,
in which case they are refused with `BudgetStateUnknown` until the daemon answers again.
`SPENDWATCH_ENFORCE=off` turns enforcement off. The same thread reads the daemon's rate cards, with which
each call is priced in the app as it ends (`prices.py`); `SPENDWATCH_APP_COST=off` turns that off, and
with both off no thread is started. The daemon is found at `SPENDWATCH_BUDGETS_URL`, else
at the OTLP/HTTP endpoint the app exports to (`OTEL_EXPORTER_OTLP_ENDPOINT`, a gRPC port 4317 read as
its HTTP neighbour 4318), else http://localhost:4318; `SPENDWATCH_INGEST_TOKEN` is sent as the bearer.

The openai SDK lets `BudgetExceeded` through as it is, unretried (it wraps only the HTTP library's own
errors); the anthropic SDK wraps every error in its `APIConnectionError` (after its retries, none of
which sends a request): `spendwatch.budget_exceeded(error)` finds it in the chain.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
import weakref
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from spendwatch.instrumentation.prices import PRICES_PATH, RateCards

BUDGETS_PATH = "/v1/spendwatch/budgets"
DEFAULT_MAX_AGE_SECONDS = 60.0
DEFAULT_REFRESH_SECONDS = 5.0
FETCH_TIMEOUT_SECONDS = 2.0
_OFF = frozenset({"off", "0", "false", "no"})


class BudgetExceeded(Exception):
    """A budget rule with `enforce = true` has spent its limit for this call's group: the call was not sent."""

    def __init__(self, rule: str, group: Mapping[str, str | None], limit_usd: float | None = None) -> None:
        scope = ", ".join(f"{name} {value}" for name, value in group.items()) or "all its calls"
        limit = f" of ${limit_usd:,.2f}" if limit_usd is not None else ""
        super().__init__(f"budget {rule!r} is spent{limit} for {scope}: the call was not sent")
        self.rule = rule
        self.group = dict(group)
        self.limit_usd = limit_usd


class BudgetStateUnknown(BudgetExceeded):
    """Fail-closed enforcement without a recent answer from the daemon: no call is sent until it answers."""

    def __init__(self, age: float | None) -> None:
        Exception.__init__(
            self,
            "spendwatch cannot tell whether budgets allow this call "
            + ("(no answer from the daemon yet)" if age is None else f"(last answer {age:.0f} s ago)")
            + " and SPENDWATCH_ENFORCE=fail-closed: the call was not sent",
        )
        self.rule = ""
        self.group = {}
        self.limit_usd = None


def budget_exceeded(error: BaseException | None) -> BudgetExceeded | None:
    """The `BudgetExceeded` behind `error` (an SDK wraps it in its own connection error), or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, BudgetExceeded):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


class _Block:
    __slots__ = ("column", "exhausted", "exhausted_values", "group_by", "limit_usd", "rule", "where_items")

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.rule = str(document["rule"])
        self.limit_usd = document.get("limit_usd")
        where = dict(document.get("where") or {})
        self.where_items = tuple((column, frozenset(values)) for column, values in where.items())
        self.group_by = tuple(document.get("group_by") or ())
        self.exhausted = {tuple(group) for group in document.get("exhausted") or ()}
        # One column (per user, per key, per model: the usual budget): its spent values as a set, so a
        # call is checked with one lookup and no group tuple built.
        one = len(self.group_by) == 1 and all(len(group) == 1 for group in self.exhausted)
        self.column = self.group_by[0] if one else None
        self.exhausted_values = frozenset(group[0] for group in self.exhausted) if one else frozenset()


def default_budgets_url(environ: Mapping[str, str]) -> str:
    explicit = environ.get("SPENDWATCH_BUDGETS_URL")
    if explicit:
        return explicit
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint and "://" in endpoint:
        parts = urlsplit(endpoint)
        netloc = parts.netloc.replace(":4317", ":4318")
        return urlunsplit(("http" if parts.scheme in ("grpc", "http") else parts.scheme, netloc, BUDGETS_PATH, "", ""))
    return "http://localhost:4318" + BUDGETS_PATH


_guards: weakref.WeakSet[BudgetGuard] = weakref.WeakSet()  # told when the process forks


def _after_fork_in_child() -> None:
    for guard in list(_guards):
        guard._forked()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


class BudgetGuard:
    """The cached state of enforced budgets, refreshed in the background; `check` runs on the request path."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        fail_closed: bool = False,
        max_age: float = DEFAULT_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        enforce: bool = True,
        cards: RateCards | None = None,
    ) -> None:
        self.url = url
        self.enforce = enforce
        self.cards = cards  # the daemon's rate cards, read by the same thread (None: no cost in the app)
        self.token = token
        self.fail_closed = fail_closed
        self.max_age = max_age
        self._clock = clock
        self._blocks: tuple[_Block, ...] = ()
        self._fetched_at: float | None = None
        self._refresh = DEFAULT_REFRESH_SECONDS
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.first_round = threading.Event()  # set once the thread has asked the daemon the first time
        _guards.add(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BudgetGuard | None:
        environ = os.environ if environ is None else environ
        mode = (environ.get("SPENDWATCH_ENFORCE") or "fail-open").strip().lower()
        enforce = mode not in _OFF
        if enforce and mode not in ("fail-open", "fail-closed"):
            raise ValueError(f"SPENDWATCH_ENFORCE: expected fail-open, fail-closed or off, got {mode!r}")
        app_cost = (environ.get("SPENDWATCH_APP_COST") or "on").strip().lower() not in _OFF
        if not enforce and not app_cost:
            return None
        url = default_budgets_url(environ)
        token = environ.get("SPENDWATCH_INGEST_TOKEN") or None
        cards = RateCards(url.removesuffix(BUDGETS_PATH) + PRICES_PATH, token) if app_cost else None
        return cls(
            url,
            token=token,
            fail_closed=enforce and mode == "fail-closed",
            max_age=float(environ.get("SPENDWATCH_BUDGET_MAX_AGE") or DEFAULT_MAX_AGE_SECONDS),
            enforce=enforce,
            cards=cards,
        )

    # -- the request path ------------------------------------------------------------------------

    def check(self, facts: Callable[[str], str | None]) -> None:
        """Raise `BudgetExceeded` when an enforced, spent budget covers a call; `facts(name)` gives the
        call's provider, model, service, api_key_id, user, tenant, feature, agent or conversation."""
        if self._thread is None:
            self.start()
        if not self.enforce:
            return
        blocks = self._blocks
        if self.fail_closed and not self._fresh():
            fetched = self._fetched_at
            raise BudgetStateUnknown(None if fetched is None else self._clock() - fetched)
        if not blocks or not self._fresh():
            return
        known: dict[str, str | None] = {}
        for block in blocks:
            covered = True
            for column, values in block.where_items:
                value = known[column] if column in known else known.setdefault(column, facts(column))
                if value not in values:
                    covered = False
                    break
            if not covered:
                continue
            name = block.column
            if name is not None:
                value = known[name] if name in known else known.setdefault(name, facts(name))
                if value in block.exhausted_values:
                    raise BudgetExceeded(block.rule, {name: value}, block.limit_usd)
                continue
            group = []
            for name in block.group_by:
                group.append(known[name] if name in known else known.setdefault(name, facts(name)))
            if tuple(group) in block.exhausted:
                raise BudgetExceeded(block.rule, dict(zip(block.group_by, group, strict=True)), block.limit_usd)

    def _fresh(self) -> bool:
        fetched = self._fetched_at
        return fetched is not None and self._clock() - fetched <= self.max_age

    # -- the background --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread. The instrumentor does when it patches, so that no call pays for
        the thread nor waits on its first requests; a forked child starts its own on its first call."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="spendwatch-budgets", daemon=True)
            self._thread.start()

    def _forked(self) -> None:
        """In a forked child: the parent's thread did not come along (and its lock may be held)."""
        self._lock = threading.Lock()
        self._thread = None
        self.first_round = threading.Event()

    def stop(self, wait: float | None = None) -> None:
        """Stop the thread; with `wait`, also wait that many seconds at most for it to end."""
        self._stop.set()
        if self.cards is not None:
            self.cards.asked.set()
        thread = self._thread
        if wait is not None and thread is not None and thread is not threading.current_thread():
            thread.join(wait)

    def _run(self) -> None:
        cards = self.cards
        next_budgets = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if self.enforce and now >= next_budgets:
                self.refresh()
                next_budgets = now + self._refresh
            if cards is None:
                self.first_round.set()
                self._stop.wait(self._refresh)
                continue
            cards.asked.clear()
            cards.refresh()
            self.first_round.set()
            # a call of a kind without a card wakes the thread at once; otherwise, the budgets' period
            cards.asked.wait(self._refresh if not self.enforce else max(next_budgets - time.monotonic(), 0.0))

    def refresh(self) -> bool:
        """Read the daemon's state once; whether it answered."""
        request = urllib.request.Request(self.url, headers={"accept": "application/json"})
        if self.token:
            request.add_header("authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as answer:
                document = json.loads(answer.read(1024 * 1024))
            blocks = tuple(_Block(block) for block in document.get("blocks") or ())
            refresh = float(document.get("refresh_seconds") or DEFAULT_REFRESH_SECONDS)
        except Exception:  # unreachable, refused, malformed: the state grows old and counts as unknown
            return False
        self._blocks = blocks
        self._fetched_at = self._clock()
        self._refresh = min(max(refresh, 1.0), DEFAULT_REFRESH_SECONDS)
        return True
