"""Real local receivers for alerts: the package's HTTP inbox (for json://) and an SMTP server."""

from __future__ import annotations

import time

from spendwatch.demo.inbox import Inbox as JsonReceiver

__all__ = ["JsonReceiver", "SmtpReceiver"]


class SmtpReceiver:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list = []

        class Handler:
            async def handle_DATA(handler, server, session, envelope):
                self.messages.append(envelope)
                return "250 OK"

        import socket

        with socket.socket() as probe:  # aiosmtpd connects to its own port to start: it needs a real one
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._controller.stop()

    def wait_for(self, count: int, timeout: float) -> list:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.messages)
