"""The fleet's shared table: rows a second into it with three writers, and `report --fleet` over 10M rows.

Both on the tests' servers — Debian's PostgreSQL as the catalog's database and moto's S3 server as the
storage, on loopback (tests/fleet_servers.py) — so the storage is a Python process on the same two cores,
far slower than S3 itself: the figures are a floor, not what a real bucket gives.

- **Three writers.** Three processes, each a daemon's database of generated calls (benchmarks/scale.py's
  generator) and its `FleetSink`, start at once and append everything in batches of `BATCH_ROWS` rows:
  rows a second table-wide, and commits a second (every commit is one optimistic Iceberg commit in the
  catalog; a writer that lost the race retries against the refreshed table).
- **`report --fleet` at 10M rows.** One daemon's 10M generated calls over 30 days go out through its sink
  in batches of a million, the lease holder's maintenance compacts each day into one file, then
  `spendwatch report --fleet --since 30d --by provider,model --format json` runs as the CLI runs it
  (planning the files, reading them from S3) against `spendwatch report` on the daemon's own file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import ROOT, Section, Spread, Target, report_main, table

WRITERS = 3
BATCH_ROWS = 10_000


def _settings(catalog: str, environ: dict, name: str):
    """`[fleet]` for a writer: the generated calls arrived long ago, so none waits to settle."""
    from dataclasses import replace
    from datetime import timedelta

    from spendwatch.fleet.settings import parse_fleet_config

    section = {"catalog": catalog, "warehouse": "s3://fleet/warehouse", "daemon": name}
    return replace(parse_fleet_config(section, Path("benchmark.toml"), environ), settle=timedelta(0))


def _writer(job: dict) -> None:
    """One daemon, in a process of its own: its database generated and its sink opened, then, once the
    go file exists, every row out in batches; what it did as JSON on stdout."""
    from benchmarks.scale import generate
    from spendwatch.collector.store import Store
    from spendwatch.fleet import sink as sink_module

    generate(Path(job["db"]), job["calls"])
    sink_module.MAX_ROWS_PER_BATCH = job["batch"]  # the benchmark's batch size, not a production setting
    store = Store(Path(job["db"]))
    sink = sink_module.FleetSink(lambda: store.con, _settings(job["catalog"], job["environ"], job["name"]))
    sink.open()
    Path(job["ready"]).touch()
    while not Path(job["go"]).exists():
        time.sleep(0.01)
    started = time.time()
    while sink.run_once():
        pass
    finished = time.time()
    store.close()
    print(json.dumps({"rows": sink.rows_appended, "commits": sink.batches, "started": started, "finished": finished}))


def _wait_for(paths: list[Path], processes: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(path.exists() for path in paths):
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"a writer exited early: {process.stderr.read()[-2000:]}")
        assert time.monotonic() < deadline, "the writers did not get ready"
        time.sleep(0.05)


def three_writers(catalog: str, environ: dict, directory: Path, calls: int, batch: int) -> dict[str, float]:
    go = directory / "go"
    jobs = [
        {
            "catalog": catalog,
            "environ": environ,
            "name": f"writer-{index}",
            "db": str(directory / f"writer-{index}.duckdb"),
            "calls": calls,
            "batch": batch,
            "ready": str(directory / f"writer-{index}.ready"),
            "go": str(go),
        }
        for index in range(WRITERS)
    ]
    code = "import json, sys; from benchmarks.fleet import _writer; _writer(json.loads(sys.argv[1]))"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, json.dumps(job)],
            cwd=ROOT,
            env={**os.environ, **environ},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for job in jobs
    ]
    _wait_for([Path(job["ready"]) for job in jobs], processes, 1800)
    go.touch()
    done = []
    for process in processes:
        out, err = process.communicate(timeout=1800)
        assert process.returncode == 0, err[-2000:]
        done.append(json.loads(out.strip().splitlines()[-1]))
    rows = sum(item["rows"] for item in done)
    commits = sum(item["commits"] for item in done)
    seconds = max(item["finished"] for item in done) - min(item["started"] for item in done)
    assert rows == WRITERS * calls, (rows, WRITERS * calls)
    return {
        "rows": rows,
        "commits": commits,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "commits_per_s": commits / seconds,
    }


def _cli(*args: str, environ: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "spendwatch.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **environ},
        timeout=1800,
        check=False,
    )
    elapsed = (time.perf_counter() - started) * 1000
    assert done.returncode == 0, done.stderr[-2000:]
    json.loads(done.stdout)
    return elapsed


def report_at_scale(catalog: str, environ: dict, directory: Path, calls: int, repeats: int) -> dict[str, object]:
    from benchmarks.scale import generate
    from spendwatch.collector.store import Store
    from spendwatch.fleet import sink as sink_module
    from spendwatch.fleet.maintenance import compact, day_files

    db = directory / "big.duckdb"
    generate(db, calls)
    sink_module.MAX_ROWS_PER_BATCH = 1_000_000
    store = Store(db)
    settings = _settings(catalog, environ, "big")
    sink = sink_module.FleetSink(lambda: store.con, settings)
    started = time.perf_counter()
    while sink.run_once():
        pass
    shipped_s = time.perf_counter() - started
    store.close()
    sink.table.refresh()
    started = time.perf_counter()
    compact(sink.table, datetime.now(UTC))
    compact_s = time.perf_counter() - started
    sink.table.refresh()
    files = sum(len(tasks) for tasks in day_files(sink.table).values())
    config = directory / "fleet.toml"
    config.write_text(f'[fleet]\ncatalog = "{catalog}"\nwarehouse = "s3://fleet/warehouse"\n')
    args = ("report", "--since", "30d", "--by", "provider,model", "--format", "json")
    fleet = Spread([_cli(*args, "--fleet", "--config", str(config), environ=environ) for _ in range(repeats)])
    local = Spread([_cli(*args, "--db", str(db), "--config", str(config), environ=environ) for _ in range(repeats)])
    return {"shipped_s": shipped_s, "compact_s": compact_s, "files": files, "fleet": fleet, "local": local}


def run(quick: bool) -> Section:
    from tests.fleet_servers import MotoS3, Postgres

    calls_each, big, repeats = (5_000, 100_000, 2) if quick else (200_000, 10_000_000, 3)
    batch = 2_000 if quick else BATCH_ROWS
    with tempfile.TemporaryDirectory() as temporary, Postgres() as postgres, MotoS3() as s3:
        writers = three_writers(postgres.url, s3.environ, Path(temporary), calls_each, batch)
        at_scale = report_at_scale(postgres.url, s3.environ, Path(temporary), big, repeats)
    fleet, local = at_scale["fleet"], at_scale["local"]
    label = f"{big:,} rows"
    writers_table = table(
        ["writers", "rows each", "rows a batch", "rows", "commits", "seconds", "rows/s table-wide", "commits/s"],
        [
            [
                WRITERS,
                f"{calls_each:,}",
                f"{batch:,}",
                f"{writers['rows']:,}",
                writers["commits"],
                f"{writers['seconds']:.1f}",
                f"{writers['rows_per_s']:,.0f}",
                f"{writers['commits_per_s']:.1f}",
            ]
        ],
    )
    scale_table = table(
        ["", "appended in", "compacted in", "data files after", "`report --fleet`", "`report` on the daemon's file"],
        [
            [
                label,
                f"{at_scale['shipped_s']:.0f} s ({big / at_scale['shipped_s']:,.0f} rows/s, one writer)",
                f"{at_scale['compact_s']:.0f} s",
                at_scale["files"],
                fleet.show(" ms", 0),
                local.show(" ms", 0),
            ]
        ],
    )
    body = f"""Three writers, each its own process, database and sink, starting at once against one table
(the catalog in PostgreSQL, the files on moto's S3 server, all on this machine):

{writers_table}

`report --since 30d --by provider,model --format json`, the whole CLI command (start-up, planning, reading),
median of {repeats} runs (lowest–highest):

{scale_table}
"""
    targets = [
        Target(
            "fleet: rows a second into the shared table, three writers",
            writers["rows_per_s"],
            10_000,
            f"{writers['rows_per_s']:,.0f} rows/s",
            at_least=True,
        ),
        Target(f"fleet: `report --fleet` over {label}, 30 days", fleet.median, 10_000, f"{fleet.median:,.0f} ms"),
    ]
    return Section("The fleet's shared table", body, targets)


if __name__ == "__main__":
    report_main(run)
