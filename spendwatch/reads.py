"""Reading the stored calls from the CLI: through the daemon when one runs on the database, else directly.

Either way a result is capped as the read API caps it; a cut result says so on stderr.

The daemon of a database is found through `<db>.daemon.json`, which it writes (private) at start-up and
removes at shutdown. A file left by a daemon that died is recognised by its process being gone.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from spendwatch.errors import UserError

DAEMON_TIMEOUT_SECONDS = 75.0
JOB_TIMEOUT_SECONDS = 900.0  # a billing import waits out the admin APIs' rate limits


def running_daemon(db: Path) -> dict[str, Any] | None:
    """The daemon file's contents when a daemon process for `db` is alive, else None."""
    path = db.with_name(db.name + ".daemon.json")
    try:
        info = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    except PermissionError:
        raise UserError(f"{path}: not readable by this user; run as the user that runs `spendwatch up`") from None
    try:
        os.kill(int(info["pid"]), 0)
    except (ProcessLookupError, KeyError, ValueError, TypeError):
        return None  # left behind by a daemon that did not stop cleanly
    except PermissionError:
        pass  # alive, another user's
    return info


def query(db: Path, sql: str, params: list[Any] | None = None) -> tuple[list[str], list[list[Any]]]:
    info = running_daemon(db)
    if info is not None:
        from spendwatch.collector.readonly import encode_params

        answer = _daemon_request(info, "POST", "/query", {"sql": sql, "params": encode_params(params or [])})
    else:
        answer = _query_file(db, sql, params or [])
    if answer.get("truncated"):
        print(
            f"spendwatch: the result was cut at {len(answer['rows']):,} rows (the limit of what one query returns); "
            "narrow it with WHERE, LIMIT or GROUP BY",
            file=sys.stderr,
        )
    return answer["columns"], answer["rows"]


def daemon_status(db: Path) -> dict[str, Any] | None:
    info = running_daemon(db)
    return None if info is None else _daemon_request(info, "GET", "/status")


def daemon_job(db: Path, name: str, payload: dict[str, Any]) -> Any | None:
    """Ask the daemon of `db` to run one of its jobs now (`billing-import`); None when no daemon runs."""
    info = running_daemon(db)
    return None if info is None else _daemon_request(info, "POST", f"/jobs/{name}", payload, JOB_TIMEOUT_SECONDS)


def _daemon_request(
    info: dict[str, Any], method: str, path: str, payload: Any = None, timeout: float = DAEMON_TIMEOUT_SECONDS
) -> Any:
    import urllib.error
    import urllib.request

    url = info["read_url"] + path
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"authorization": f"Bearer {info['token']}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read())["error"]
        except (ValueError, KeyError):
            message = f"HTTP {error.code}"
        raise UserError(message) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise UserError(f"the daemon (pid {info['pid']}) at {info['read_url']} does not answer: {reason}") from None


def _query_file(db: Path, sql: str, params: list[Any]) -> dict[str, Any]:
    from spendwatch.collector.readonly import check_read_only, query_json
    from spendwatch.collector.store import open_existing

    check_read_only(sql)
    con = open_existing(db, read_only=True)
    try:
        return json.loads(query_json(con, sql, params=params, rollback=False))
    finally:
        con.close()


def database_status(db: Path) -> dict[str, Any]:
    """What `spendwatch status` prints: the daemon's own status, or what the file holds when none runs."""
    status = daemon_status(db)
    if status is not None:
        return {"running": True, **status}
    report: dict[str, Any] = {"running": False, "db": str(db)}
    if db.exists():
        _, ((calls, last, unpriced),) = query(
            db,
            "SELECT count(*), max(start_time), count(DISTINCT model) FILTER (unpriced) FROM llm_calls",
        )
        report.update(calls_stored=calls, last_call_at=last, unpriced_models=unpriced)
    return report
