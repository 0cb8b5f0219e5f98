"""`spendwatch run -- CMD`: run a program under the instrumentation, pointed at the local collector.

It is `opentelemetry-instrument CMD` with spendwatch's defaults: traces to the daemon running on the
default database (else localhost:4317), metrics and logs off (spendwatch stores calls from traces), the
service named after the program, and the exporter's timeouts bounded to a second so that a collector
that is down or slow never holds the app up, at a call or at exit. Variables the user set win.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from spendwatch.errors import UserError

EXPORT_TIMEOUT_SECONDS = "1"
EXPORT_TIMEOUT_MILLIS = "1000"


def run_environment(command: list[str], endpoint: str, environ: dict[str, str]) -> dict[str, str]:
    env = dict(environ)
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    protocol = (
        "http/protobuf" if endpoint.rstrip("/").endswith(":4318") else env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    )
    defaults = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": Path(command[0]).name if command else "app",
        "OTEL_EXPORTER_OTLP_TIMEOUT": EXPORT_TIMEOUT_SECONDS,
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": EXPORT_TIMEOUT_SECONDS,
        "OTEL_BSP_EXPORT_TIMEOUT": EXPORT_TIMEOUT_MILLIS,
        "OTEL_BSP_SCHEDULE_DELAY": "500",
    }
    token = env.get("SPENDWATCH_INGEST_TOKEN")
    if token:
        defaults["OTEL_EXPORTER_OTLP_HEADERS"] = f"authorization=Bearer%20{token}"
    for name, value in defaults.items():
        env.setdefault(name, value)
    return env


def default_endpoint(db: Path) -> str:
    from spendwatch.reads import running_daemon

    info = running_daemon(db)
    if info is not None:
        host = "127.0.0.1" if info["host"] in ("0.0.0.0", "::", "") else info["host"]
        return f"http://{host}:{info['grpc_port']}"
    return "http://localhost:4317"


def budgets_url(db: Path) -> str | None:
    """Where the running daemon of `db` says which enforced budgets are spent (its OTLP/HTTP port)."""
    from spendwatch.reads import running_daemon

    info = running_daemon(db)
    if info is None:
        return None
    host = "127.0.0.1" if info["host"] in ("0.0.0.0", "::", "") else info["host"]
    return f"http://{host}:{info['http_port']}/v1/spendwatch/budgets"


def exec_instrumented(command: list[str], endpoint: str, budgets: str | None = None) -> None:
    """Replace this process with the instrumented program: its signals and exit code are its own."""
    if not command:
        raise UserError("nothing to run: spendwatch run [--endpoint URL] -- CMD ...")
    instrument = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent)) or shutil.which(
        "opentelemetry-instrument"
    )
    if instrument is None:
        raise UserError("opentelemetry-instrument is not installed beside spendwatch; reinstall spendwatch")
    program = shutil.which(command[0]) or command[0]
    env = run_environment(command, endpoint, dict(os.environ))
    if budgets:
        env.setdefault("SPENDWATCH_BUDGETS_URL", budgets)
    try:
        os.execve(instrument, [instrument, program, *command[1:]], env)
    except OSError as error:
        raise UserError(f"cannot run {command[0]}: {error.strerror}") from None
