"""What every benchmark shares: medians with their spread, the machine and versions, markdown tables."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import statistics
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Spread:
    """The median of several rounds' figures, with the lowest and highest round."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def show(self, unit: str = "", digits: int = 1) -> str:
        if not self.values:
            return "—"
        low, high = min(self.values), max(self.values)
        return f"{self.median:,.{digits}f}{unit} ({low:,.{digits}f}–{high:,.{digits}f})"


@dataclass
class Target:
    """One figure next to its goal: met when `value <= goal` (or `>=` when `at_least`)."""

    name: str
    value: float | None
    goal: float
    shown: str
    at_least: bool = False

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.goal if self.at_least else self.value <= self.goal


@dataclass
class Section:
    title: str
    body: str
    targets: list[Target] = field(default_factory=list)


def table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    packages = ", ".join(
        f"{name} {version(name)}"
        for name in (
            "openai",
            "anthropic",
            "httpx2",
            "opentelemetry-sdk",
            "duckdb",
            "genai-prices",
            "opentelemetry-instrumentation-openai",
            "opentelemetry-instrumentation-httpx",
        )
    )
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; {packages}"
    )


def peak_rss_mib(pid: int) -> float | None:
    """The high-water mark of a running process's resident memory (Linux)."""
    return _status_mib(pid, "VmHWM:")


def rss_mib(pid: int) -> float | None:
    return _status_mib(pid, "VmRSS:")


class PeakRss:
    """The highest RSS of process `pid` seen while the block runs, sampled every few milliseconds."""

    def __init__(self, pid: int, every: float = 0.005) -> None:
        self.pid, self.every, self.peak = pid, every, 0.0
        self._done = threading.Event()

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_mib(self.pid) or 0.0)
            self._done.wait(self.every)

    def __enter__(self) -> PeakRss:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib(self.pid) or 0.0)


def _status_mib(pid: int, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def report_main(run) -> None:
    """A benchmark module run on its own: `python -m benchmarks.NAME [--quick]` prints its section."""
    section = run(quick="--quick" in sys.argv)
    print(section.body)
    for target in section.targets:
        print(f"{target.name}: {target.shown} (goal {target.goal}) met={target.met}")
