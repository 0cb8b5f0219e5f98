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
    """One query, through the daemon when one runs on `db`, else on the file."""
    with Reader(db) as reader:
        return reader(sql, params)


class Reader:
    """The way to a database for the length of one command: the daemon is looked for once, and with none
    running the file is opened once, read-only, for all the command's queries (each open costs ~10 ms:
    a report asks two or three). Called as `reader(sql, params)` -> (columns, rows), like `query`."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self._daemon = running_daemon(db)
        self._con: Any = None

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __call__(self, sql: str, params: list[Any] | None = None) -> tuple[list[str], list[list[Any]]]:
        if self._daemon is not None:
            from spendwatch.collector.readonly import encode_params

            payload = {"sql": sql, "params": encode_params(params or [])}
            answer = _daemon_request(self._daemon, "POST", "/query", payload)
        else:
            answer = self._query_file(sql, params or [])
        if answer.get("truncated"):
            print(
                f"spendwatch: the result was cut at {len(answer['rows']):,} rows (the limit of what one query "
                "returns); narrow it with WHERE, LIMIT or GROUP BY",
                file=sys.stderr,
            )
        return answer["columns"], answer["rows"]

    def _query_file(self, sql: str, params: list[Any]) -> dict[str, Any]:
        from spendwatch.collector.readonly import check_read_only, query_json
        from spendwatch.collector.store import open_existing

        check_read_only(sql)  # before the file is opened
        if self._con is None:
            self._con = open_existing(self.db, read_only=True)
        return json.loads(query_json(self._con, sql, params=params, rollback=False))


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
