"""Internal errors: never the user's problem in production, always the test's problem under pytest.

spendwatch runs inside other people's apps. A bug in our parsing must cost a span, never the app's
response, so every hook catches its own errors and hands them here: logged once per place, or re-raised
while a test runs so that the suite still fails loudly.
"""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger("spendwatch")

_seen: set[tuple[str, int, str]] = set()


def log_internal_error() -> None:
    """Call from an `except` block: re-raise under pytest, else log once per (file, line, error type)."""
    if os.environ.get("PYTEST_CURRENT_TEST") and not os.environ.get("SPENDWATCH_SWALLOW_INTERNAL_ERRORS"):
        raise
    exc_type, _, traceback = sys.exc_info()
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    where = (
        (traceback.tb_frame.f_code.co_filename, traceback.tb_lineno, getattr(exc_type, "__name__", ""))
        if traceback is not None
        else ("", 0, "")
    )
    if where in _seen:
        return
    _seen.add(where)
    logger.exception("spendwatch: internal error; the app's call is unaffected, its span may be missing")
