"""Internal errors: never the user's problem in production, always the test's problem under pytest.

spendwatch runs inside other people's apps. A bug in our parsing must cost a span, never the app's
response, so every hook catches its own errors and hands them here: logged once per place, or re-raised
while a test runs so that the suite still fails loudly.

The log line carries the error's type and where it happened (the traceback's code lines), never the
error's message: a message may quote the data being parsed, and that data is the user's conversation.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback

logger = logging.getLogger("spendwatch")

_seen: set[tuple[str, int, str]] = set()


def log_internal_error() -> None:
    """Call from an `except` block: re-raise under pytest, else log once per (file, line, error type)."""
    if os.environ.get("PYTEST_CURRENT_TEST") and not os.environ.get("SPENDWATCH_SWALLOW_INTERNAL_ERRORS"):
        raise
    exc_type, _, tb = sys.exc_info()
    frames = traceback.extract_tb(tb)
    last = frames[-1] if frames else None
    error_name = getattr(exc_type, "__qualname__", "Exception")
    where = (last.filename, last.lineno or 0, error_name) if last else ("", 0, error_name)
    if where in _seen:
        return
    _seen.add(where)
    logger.error(
        "spendwatch: internal error %s (the app's call is unaffected; its span may be missing)\n%s",
        error_name,
        "".join(traceback.format_list(frames)).rstrip(),
    )
