"""`spendwatch up` with faults injected into its writer, for the durability tests: `python -m
tests.faulty_daemon up ...`, steered by two variables read once at start-up (production code has no such
knobs: the faults are patched in here).

- `FAULT_WRITE_DELAY`: seconds each commit is slowed by (a slow disk: the writer falls behind);
- `FAULT_FAIL_WRITES_WHILE`: a path; while it exists, every commit fails as a full disk would.
"""

from __future__ import annotations

import os
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

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
