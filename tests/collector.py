"""Running `spendwatch up` as a real subprocess on free ports, and reading its database afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

RUNNING: list[Collector] = []  # the conftest stops whatever a failed test left running


class Collector:
    def __init__(
        self,
        db: Path,
        log: Path,
        config: Path | None = None,
        http_port: int = 0,
        env: dict | None = None,
        extra: tuple[str, ...] = (),
        shared: bool = False,
        module: str = "spendwatch.cli",
    ) -> None:
        self.module = module  # tests.faulty_daemon: the same daemon with faults injected into its writer
        self.extra = list(extra)
        self.shared = shared  # a fixture wider than one test owns it: not stopped after each test
        self.db = db
        self.log = log
        self.config = config
        self.http_port = http_port
        self.env = env or {}
        self.process: subprocess.Popen | None = None
        self.info: dict = {}

    def start(self) -> Collector:
        command = [
            sys.executable,
            "-m",
            self.module,
            "up",
            "--db",
            str(self.db),
            "--http-port",
            str(self.http_port),
            "--grpc-port",
            "0",
            "--ui-port",
            "0",
        ]
        if self.config is not None:
            command += ["--config", str(self.config)]
        command += self.extra
        self._log_file = self.log.open("ab")
        self.process = subprocess.Popen(
            command, stdout=self._log_file, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
        )
        RUNNING.append(self)
        daemon_file = self.db.with_name(self.db.name + ".daemon.json")
        daemon_file.unlink(missing_ok=True)  # one left by a daemon that was killed
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"spendwatch up exited with {self.process.returncode}: {self.log.read_text()}")
            if daemon_file.exists() and daemon_file.read_text():
                self.info = json.loads(daemon_file.read_text())
                return self
            time.sleep(0.05)
        raise AssertionError(f"spendwatch up did not start: {self.log.read_text()}")

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.info['grpc_port']}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.info['http_port']}"

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # say where it hangs: the daemon dumps its threads on SIGUSR1
            self.process.send_signal(signal.SIGUSR1)
            time.sleep(1)
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"spendwatch up did not stop on SIGTERM:\n{self.log.read_text()[-20000:]}") from None
        self._log_file.close()
        return code

    def status(self) -> dict:
        """The running daemon's status, through its read API."""
        import httpx

        answer = httpx.get(
            self.info["read_url"] + "/status", headers={"authorization": f"Bearer {self.info['token']}"}, timeout=10
        )
        answer.raise_for_status()
        return answer.json()

    def wait_until(self, counter: str, at_least: int, timeout: float = 20) -> int:
        """Poll the daemon's status until `counter` (rule_evaluations, delivery_rounds, ...) reaches `at_least`."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.status()[counter]
            if value >= at_least:
                return value
            assert time.monotonic() < deadline, f"{counter} stayed at {value}, below {at_least}"
            time.sleep(0.05)

    def more(self, counter: str, count: int, timeout: float = 20) -> int:
        """Wait until `counter` has gone up by `count` from now: e.g. two more rule evaluations."""
        return self.wait_until(counter, self.status()[counter] + count, timeout)

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        """Read the database; only once the daemon is stopped (DuckDB allows one process)."""
        con = duckdb.connect(str(self.db), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spendwatch.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )
