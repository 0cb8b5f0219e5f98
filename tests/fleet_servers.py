"""Real servers for the fleet's tests, on loopback, in temporary directories: Debian's PostgreSQL as the
catalog's database and moto's S3 server as the storage.

PostgreSQL's `initdb` refuses to run as root (a server must not own the machine), so as root both it and
the server run as `nobody`, with the data directory and socket in a directory `nobody` owns (Python's
`subprocess` switches the user; no `su` or `sudo`). Never a system server: a cluster of its own on a free
port, stopped and removed at the end.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


DEBIAN_POSTGRESQL = Path("/usr/lib/postgresql")


def postgres_tool(name: str, debian: Path = DEBIAN_POSTGRESQL, path: str | None = None) -> str:
    """A PostgreSQL server tool (initdb, pg_ctl): Debian keeps them under /usr/lib/postgresql/<version>/bin,
    off the PATH, the newest version first; other systems (and Debian's symlinks) put them on the PATH."""

    def version(folder: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in folder.parent.name.split(".") if part.isdigit())

    for folder in sorted(debian.glob("*/bin"), key=version, reverse=True):
        if os.access(folder / name, os.X_OK):
            return str(folder / name)
    found = shutil.which(name, path=path)
    if found is None:
        raise AssertionError(
            f"{name} not found in {debian}/*/bin or on the PATH: install Debian's postgresql package (.ci/run does)"
        )
    return found


class Postgres:
    """A throwaway PostgreSQL cluster: `url` is its SQLAlchemy URL (user spendwatch, trust on loopback)."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="spendwatch-pg-"))
        self.port = free_port()
        self._as: dict = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.directory, nobody.pw_uid, nobody.pw_gid)
            self._as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://spendwatch@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, **self._as)
        if done.returncode != 0:
            raise AssertionError(f"{command[0]} failed: {done.stderr or done.stdout}")

    def __enter__(self) -> Postgres:
        data = self.directory / "data"
        self._run(
            postgres_tool("initdb"), "-D", str(data), "-U", "spendwatch", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        options = f"-k {self.directory} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            postgres_tool("pg_ctl"), "-D", str(data), "-l", str(self.directory / "log"), "-w", "-o", options, "start"
        )
        return self

    def __exit__(self, *exc_info) -> None:
        subprocess.run(
            [postgres_tool("pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
            **self._as,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


class MotoS3:
    """moto's S3 server as a subprocess, with one bucket; `environ` is what a client needs to reach it."""

    def __init__(self, bucket: str = "fleet") -> None:
        self.bucket = bucket
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix="spendwatch-moto-", suffix=".log")[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def environ(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": self.endpoint,
        }

    def __enter__(self) -> MotoS3:
        server = Path(sys.executable).with_name("moto_server")  # the venv's, beside its python
        if not server.exists():
            found = shutil.which("moto_server")
            if found is None:
                raise AssertionError("moto_server not found: pip install 'spendwatch[test]' (moto[server])")
            server = Path(found)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(server), "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_for_port(self.port, 30, self.process)
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=self.bucket)
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.unlink(missing_ok=True)
