"""`spendwatch ui`: the dashboard's address, with its token, from the daemon file; and a browser to open it.

The token sits in the daemon file beside the database, private to the user who runs the daemon, so
whoever can read the database can open the dashboard, and nobody else. A browser is started only where
one can show a window: on a Linux without a display, `webbrowser` would start a text browser in the
terminal, so the address is printed alone.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlencode

from spendwatch.errors import UserError
from spendwatch.reads import running_daemon


def dashboard_address(db: Path) -> str:
    info = running_daemon(db)
    if info is None:
        raise UserError(f"no daemon runs on {db}; start it with `spendwatch up`, which serves the dashboard")
    if not info.get("ui_url") or not info.get("ui_token"):
        raise UserError(f"the daemon of {db} (pid {info['pid']}) serves no dashboard: it was started with --no-ui")
    return f"{info['ui_url']}?{urlencode({'token': info['ui_token']})}"


def has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_in_browser(address: str) -> bool:
    """Open `address` in the user's browser when there is a display; whether one was asked to."""
    if not has_display():
        return False
    import webbrowser

    return webbrowser.open(address)
