"""`spendwatch up` with faults injected into its writer, for the durability tests: `python -m
tests.faulty_daemon up ...`, steered by two variables read once at start-up (production code has no such
knobs: the faults are patched in here).

- `FAULT_WRITE_DELAY`: seconds each commit is slowed by (a slow disk: the writer falls behind);
- `FAULT_FAIL_WRITES_WHILE`: a path; while it exists, every commit fails as a full disk would;
- `FAULT_KILL_AFTER_FLEET_COMMIT`: a path; once it exists, the daemon kills itself (SIGKILL) right after
  its next batch landed in the fleet's shared table, before the database has recorded it — the moment
  a retry would count calls twice.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from spendwatch.cli import main
from spendwatch.collector.store import Store

_delay = float(os.environ.get("FAULT_WRITE_DELAY") or 0)
_fail_while = Path(os.environ["FAULT_FAIL_WRITES_WHILE"]) if os.environ.get("FAULT_FAIL_WRITES_WHILE") else None
_write = Store.write


def _faulty_write(self, *args, **kwargs):
    if _delay:
        time.sleep(_delay)
    if _fail_while is not None and _fail_while.exists():
        raise OSError(28, "No space left on device (injected)")
    return _write(self, *args, **kwargs)


Store.write = _faulty_write

_kill_after_fleet_commit = os.environ.get("FAULT_KILL_AFTER_FLEET_COMMIT")
if _kill_after_fleet_commit:
    from spendwatch.fleet.sink import FleetSink

    _fleet_commit = FleetSink._commit

    def _commit_then_die(self, *args, **kwargs):
        _fleet_commit(self, *args, **kwargs)
        if Path(_kill_after_fleet_commit).exists():
            os.kill(os.getpid(), signal.SIGKILL)

    FleetSink._commit = _commit_then_die

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
