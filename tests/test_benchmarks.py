"""The benchmarks run (in their quick mode), so they never rot: every section, every target, a verdict each."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmarks_write_every_section_and_target(tmp_path):
    output = tmp_path / "RESULTS.md"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    text = output.read_text()
    for title in (
        "## Targets",
        "## Instrumentation overhead",
        "## What an app pays when its collector is down",
        "## Collector ingest",
        "## Queries, rules and storage at scale",
        "## Prometheus metrics at scale",
        "## The fleet's shared table",
    ):
        assert title in text
    targets = text.split("## Targets", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in targets.splitlines() if line.startswith("| ") and "---" not in line][1:]
    names = " ".join(row.split("|")[1] for row in rows)
    for figure in ("LLM call: added per call", "non-LLM request", "first chunk", "per chunk", "OTLP/HTTP", "OTLP/gRPC"):
        assert figure in names
    for figure in (
        "report 7d",
        "report 30d",
        "rule",
        "bytes on disk",
        "RSS",
        "dashboard",
        "/metrics scrape",
        "fleet: rows",
        "--fleet",
    ):
        assert figure in names
    for row in rows:  # each figure is a number, next to its target and a verdict
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert re.search(r"\d", cells[1]), row
        assert cells[2].startswith(("≤", "≥")), row
        assert cells[3] in ("met", "**missed**"), row
