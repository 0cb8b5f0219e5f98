"""`spendwatch up`: the receivers, the writer and the database, started and stopped in the right order.

Start: the database first (a file that cannot be opened stops everything, with one line, before any
port is taken), then the writer, then the receivers. Stop (SIGTERM or SIGINT): the receivers stop taking
exports and finish the ones in flight, the writer commits what is queued, the database is checkpointed
and closed, exit 0.

Beside them run the rules (rules/engine.py) and the providers' bills, imported at start-up and daily
(billing/schedule.py), both on APScheduler; the bills are written on the writer's thread between commits.

Beside the database, `<db>.daemon.json` (private, like the database) says which process serves it, on
which ports, where its read API listens with which token, and where its dashboard is with the token
that opens it: the CLI finds the daemon of a database through it, and tools that start the daemon on
port 0 learn its ports.
"""

from __future__ import annotations

import faulthandler
import ipaddress
import json
import logging
import os
import secrets
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from spendwatch.billing.schedule import BillingSchedule
from spendwatch.collector.attributes import KeepList
from spendwatch.collector.forward import start_forwarders
from spendwatch.collector.grpc_receiver import GrpcReceiver
from spendwatch.collector.http_receiver import HttpReceiver
from spendwatch.collector.ingest import Ingest
from spendwatch.collector.migrations import NewerSchemaError
from spendwatch.collector.price_refresh import PriceRefresh
from spendwatch.collector.read_api import MetricsEndpoint, ReadApi
from spendwatch.collector.readonly import ReadConnections
from spendwatch.collector.self_metrics import start_self_metrics
from spendwatch.collector.store import Store
from spendwatch.collector.tally import CallTally
from spendwatch.collector.web import HttpServers
from spendwatch.collector.writer import Writer
from spendwatch.config import Config
from spendwatch.errors import UserError
from spendwatch.exports.prometheus import DaemonMetrics
from spendwatch.groups import GROUPS, METRIC_LABELS
from spendwatch.rules.engine import RulesEngine

logger = logging.getLogger("spendwatch.collector")


class StartupError(UserError):
    """The daemon cannot start: one line for the user, exit code 2."""


def daemon_file(db: Path) -> Path:
    return db.with_name(db.name + ".daemon.json")


def open_store(db: Path) -> Store:
    try:
        return Store(db)
    except NewerSchemaError as error:
        raise StartupError(f"{db}: written by a newer spendwatch ({error}); upgrade spendwatch") from None
    except duckdb.IOException as error:
        message = str(error)
        if "lock" in message.lower():
            raise StartupError(f"{db}: in use by another process (is spendwatch up already running?)") from None
        raise StartupError(f"{db}: cannot be opened as a spendwatch database: {message.splitlines()[0]}") from None
    except (duckdb.Error, OSError) as error:
        raise StartupError(f"{db}: cannot be opened: {str(error).splitlines()[0]}") from None


RETENTION_INTERVAL_SECONDS = 24 * 3600


def _prune_daily(writer: Writer, keep: timedelta, stop: threading.Event) -> None:
    """Retention: at start-up and then daily, on the writer thread, between commits."""
    while not stop.is_set():
        cutoff = datetime.now(UTC) - keep
        try:
            deleted = writer.call(lambda store, cutoff=cutoff: store.prune(cutoff)).result()
            logger.info("retention: deleted %d calls that started before %s", deleted, cutoff.isoformat())
        except Exception as error:
            logger.error("retention: pruning failed (%s); trying again tomorrow", error)
        stop.wait(RETENTION_INTERVAL_SECONDS)


LINK_PRUNE_INTERVAL_SECONDS = 300


def _prune_links_often(writer: Writer, stop: threading.Event) -> None:
    """The parent links of spans that are not model calls are needed minutes, not days (collector/resolve.py)."""
    while not stop.wait(LINK_PRUNE_INTERVAL_SECONDS):
        try:
            writer.call(lambda store: store.prune_links()).result()
        except Exception as error:
            logger.error("forgetting old span links failed (%s); trying again later", error)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run(config: Config, stop: threading.Event | None = None, reload: Callable[[], Config] | None = None) -> int:
    """Serve until SIGTERM or SIGINT (or `stop`); on SIGHUP, `reload()` gives the new rules and prices."""
    stop = stop or threading.Event()
    # Before anything else, so that a SIGTERM during start-up is a clean stop, not a kill.
    reload_requested = threading.Event()
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: every thread's stack to stderr
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload_requested.set())
    if not is_loopback(config.host) and not config.ingest_token:
        raise StartupError(
            f"refusing to listen on {config.host} without an ingest token: set --ingest-token or "
            "SPENDWATCH_INGEST_TOKEN (exporters send it as OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20...)"
        )
    _check_fleet(config)
    os.umask(0o077)  # the database, its WAL and the daemon file are the owner's alone
    store = open_store(config.db)
    if store.migrations_applied:
        logger.info("database %s: applied migrations %s", config.db, ", ".join(store.migrations_applied))
    writer = Writer(store, config.max_queued_spans)
    counting_from = datetime.now(UTC)  # the spend counters of /metrics count the calls stored from here on
    writer.start()
    ingest = Ingest(writer, config.pricer(), KeepList(config.keep_attributes), config.attribution)
    ingest.forwarders = start_forwarders(list(config.forward), config.db.with_name(config.db.name + ".forward"))
    prices = PriceRefresh(config.prices_url, config.prices_refresh, config.db, writer, ingest)
    reads = ReadConnections(store)  # from here on, the database's settings are locked
    servers = HttpServers()
    http = HttpReceiver(ingest, ingest_token=config.ingest_token)
    try:
        http_port = servers.add(http.app, config.host, config.http_port)
        grpc_receiver = GrpcReceiver(config.host, config.grpc_port, ingest, ingest_token=config.ingest_token)
    except OSError as error:
        writer.stop()
        store.close()
        raise StartupError(f"cannot listen on {config.host}: {error}") from None
    started_at = datetime.now(UTC)
    token = secrets.token_urlsafe(32)
    engine = {"rules": RulesEngine(lambda: store.con, config.rules)}
    engine["billing"] = _billing(config, writer, ingest)
    fleet = _fleet(config, store)
    dashboard = None
    if config.ui:
        from spendwatch.ui.server import DashboardServer

        dashboard = DashboardServer(reads, secrets.token_urlsafe(32), lambda: engine["rules"].config)
        try:
            dashboard.bound(servers.add(dashboard.app, "127.0.0.1", config.ui_port))
        except OSError as error:
            grpc_receiver.stop(0)
            writer.stop()
            store.close()
            raise StartupError(
                f"cannot serve the dashboard on 127.0.0.1:{config.ui_port}: {error.strerror or error}; "
                "choose another --ui-port (0: any free port) or turn it off with --no-ui"
            ) from None

    def counters() -> dict:
        """The daemon's own counters, in memory: cheap enough for every scrape."""
        return {
            "spans_received": ingest.counts.received,
            "spans_stored": writer.stored,
            "spans_dropped": ingest.counts.dropped,
            "spans_rejected": ingest.counts.rejected,
            "duplicates_ignored": writer.duplicates,
            "exports_in_flight": http.in_flight,
            "spans_queued": writer.queued_spans,
        }

    def status() -> dict:
        cursor = store.con.cursor()
        try:
            calls, unpriced = cursor.execute(
                "SELECT count(*), count(DISTINCT model) FILTER (unpriced) FROM llm_calls"
            ).fetchone()
            (last_received,) = cursor.execute("SELECT max(received_at) FROM llm_call_spans").fetchone()
            (failed_deliveries,) = cursor.execute(
                "SELECT count(*) FROM alert_deliveries WHERE gave_up_at IS NOT NULL OR "
                "(delivered_at IS NULL AND attempts > 0)"
            ).fetchone()
        finally:
            cursor.close()
        return {
            **info,
            "db": str(config.db),
            "started_at": started_at.isoformat(),
            "calls_stored": calls,
            "last_call_received_at": last_received.isoformat() if last_received else None,
            "unpriced_models": unpriced,
            "rules_loaded": len(engine["rules"].config.rules),
            "rule_evaluations": engine["rules"].evaluations,
            "delivery_rounds": engine["rules"].delivery_rounds,
            **counters(),
            "alert_deliveries_failing": failed_deliveries,
            "billing_imports": engine["billing"].runs,
            "billing_import_failures": engine["billing"].failures,
            "price_data": prices.status(),
            **(fleet.status() if fleet is not None else {}),
        }

    tally = CallTally(
        {label: GROUPS[label] for label in METRIC_LABELS},
        lambda: reads.snapshot(writer.commit_lock),
        lambda: engine["rules"].config.settle,
        counting_from,
    )
    metrics = DaemonMetrics(
        tally,
        reads.run_query,
        lambda: engine["rules"].config,
        counters,
        forwarding=lambda: [forwarder.stats() for forwarder in ingest.forwarders],
        top=config.metrics_top,
        max_series=config.metrics_max_series,
        started_at=counting_from,
        scrape_interval=config.metrics_scrape_interval,
    )
    metrics_endpoint = MetricsEndpoint(metrics.exposition, reads.executor, token, config.metrics_token)
    read_api = ReadApi(
        reads, token, status, metrics_endpoint, jobs={"billing-import": lambda request: engine["billing"].job(request)}
    )
    read_api.url = f"http://127.0.0.1:{servers.add(read_api.app, '127.0.0.1', 0)}"
    metrics_url = read_api.url + "/metrics"
    if config.metrics_port is not None:
        try:
            metrics_port = servers.add(metrics_endpoint.app(), "127.0.0.1", config.metrics_port)
            metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        except OSError as error:
            grpc_receiver.stop(0)
            writer.stop()
            store.close()
            raise StartupError(
                f"cannot serve /metrics on 127.0.0.1:{config.metrics_port}: {error.strerror or error}; "
                "choose another --metrics-port (0: any free port)"
            ) from None
    started = threading.Event()  # ready means ready for everything: the daemon file is written too
    http.ready = lambda: started.is_set() and writer.healthy()
    http.budget_state = lambda: engine["rules"].budget_state()
    servers.start()
    grpc_receiver.start()
    engine["rules"].start()
    engine["billing"].start()
    prices.start()
    if fleet is not None:
        fleet.start()
    meters = start_self_metrics(config.metrics_endpoint, status) if config.metrics_endpoint else None
    threading.Thread(target=_prune_links_often, args=(writer, stop), name="spendwatch-links", daemon=True).start()
    if config.retention is not None:
        retention = threading.Thread(
            target=_prune_daily, args=(writer, config.retention, stop), name="spendwatch-retention", daemon=True
        )
        retention.start()
    info = {
        "pid": os.getpid(),
        "host": config.host,
        "http_port": http_port,
        "grpc_port": grpc_receiver.port,
        "read_url": read_api.url,
        "metrics_url": metrics_url,
        "ui_url": dashboard.url if dashboard is not None else None,
    }
    ui_token = {"ui_token": dashboard.token} if dashboard is not None else {}
    daemon_file(config.db).write_text(json.dumps({**info, "token": token, **ui_token}))
    started.set()
    logger.info(
        "spendwatch up: %s; OTLP/gRPC on %s:%d, OTLP/HTTP on %s:%d%s",
        config.db,
        config.host,
        grpc_receiver.port,
        config.host,
        http_port,
        "; ingest token required" if config.ingest_token else "",
    )
    if dashboard is not None:
        logger.info("dashboard on %s (`spendwatch ui` opens it with its token)", dashboard.url)
    while not stop.wait(0.2):
        if reload_requested.is_set():
            reload_requested.clear()
            _reload(reload, engine, ingest, store, writer, prices, fleet)
    logger.info("stopping: finishing exports in flight")
    grpc_receiver.stop()
    servers.stop()
    engine["rules"].stop()
    for forwarder in ingest.forwarders:
        forwarder.stop()
    engine["billing"].stop()
    prices.stop()
    if fleet is not None:
        fleet.stop()
    if meters is not None:
        meters.shutdown()
    writer.stop()
    store.close()
    daemon_file(config.db).unlink(missing_ok=True)
    counts = ingest.counts
    logger.info(
        "stopped: %d spans received, %d LLM calls stored, %d duplicates ignored, %d other spans dropped, %d rejected",
        counts.received,
        writer.stored,
        writer.duplicates,
        counts.dropped,
        counts.rejected,
    )
    return 0


def _billing(config: Config, writer: Writer, ingest: Ingest) -> BillingSchedule:
    """The providers' bills, fetched on the scheduler's thread and written on the writer's between commits,
    priced by the same pricer as the calls (so reloaded prices apply to both)."""

    def write(work):
        return writer.call(lambda store: work(store.con)).result()

    return BillingSchedule(config.billing, write, lambda *args, **kwargs: ingest.pricer.price_total(*args, **kwargs))


def _check_fleet(config: Config) -> None:
    """`[fleet]` without the fleet's libraries: one line, before anything starts."""
    if config.fleet is None:
        return
    import importlib.util

    missing = [name for name in ("pyiceberg", "pyarrow", "sqlalchemy") if importlib.util.find_spec(name) is None]
    if missing:
        raise StartupError(f"{config.config}: [fleet] needs {', '.join(missing)}: pip install 'spendwatch[fleet]'")


def _fleet(config: Config, store: Store):
    """The fleet's sink, lease and rules (spendwatch/fleet) when the config has `[fleet]`; else None."""
    if config.fleet is None:
        return None
    from spendwatch.fleet.service import Fleet
    from spendwatch.rules.alerts import apprise_send

    return Fleet(lambda: store.con, config.fleet, config.rules, apprise_send, local_retention=config.retention)


def _reload(
    reload: Callable[[], Config] | None,
    engine: dict,
    ingest: Ingest,
    store: Store,
    writer: Writer,
    prices: PriceRefresh,
    fleet: Any = None,
) -> None:
    """SIGHUP: new rules, notifiers, key names and prices; ingest never pauses. A bad file changes nothing."""
    if reload is None:
        return
    try:
        config = reload()
    except UserError as error:
        logger.error("reload refused; the running configuration stays:\n%s", error)
        return
    old = engine["rules"]
    old.stop()
    engine["rules"] = RulesEngine(lambda: store.con, config.rules)
    engine["rules"].start()
    ingest.pricer = config.pricer()
    ingest.keep = KeepList(config.keep_attributes)
    ingest.attribution = config.attribution
    engine["billing"].stop()
    engine["billing"] = _billing(config, writer, ingest)
    engine["billing"].start()
    if fleet is not None:
        fleet.reload(config.rules)
    logger.info("reloaded: %d rule(s), %d notifier(s)", len(config.rules.rules), len(config.rules.notifiers))
    threading.Thread(target=prices.reprice_unpriced, name="spendwatch-reprice", daemon=True).start()
