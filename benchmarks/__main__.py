"""`python -m benchmarks [--quick] [--output PATH] [--only NAME,...]`: run the benchmarks, write RESULTS.md.

A full run takes ~15 minutes on 2 cores and writes `benchmarks/RESULTS.md`; `--quick` (about a minute,
run once by the test suite so the benchmarks never rot) uses small sizes and writes to `--output`
(default: `benchmarks/RESULTS-quick.md`, not committed). Every ratio in the file is measured in the run
that wrote it, on the same machine, with the same payloads on both sides.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import attribution, collector_down, fleet, ingest, metrics, overhead, scale
from benchmarks.common import ROOT, Section, machine, table

BENCHMARKS = {
    "overhead": overhead.run,
    "collector_down": collector_down.run,
    "ingest": ingest.run,
    "scale": scale.run,
    "metrics": metrics.run,
    "attribution": attribution.run,
    "fleet": fleet.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of about a minute")
    parser.add_argument("--output", type=Path, help="where to write the results (markdown)")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    output = args.output or ROOT / "benchmarks" / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    names = [name.strip() for name in args.only.split(",")] if args.only else list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    started = time.monotonic()
    sections: list[Section] = []
    for name in names:
        print(f"running {name} ...", flush=True)
        section_started = time.monotonic()
        sections.append(BENCHMARKS[name](args.quick))
        print(f"  {name}: {time.monotonic() - section_started:.0f} s", flush=True)
    output.write_text(render(sections, args.quick, time.monotonic() - started))
    print(f"wrote {output}")


def render(sections: list[Section], quick: bool, seconds: float) -> str:
    rows = []
    for section in sections:
        for target in section.targets:
            verdict = {True: "met", False: "**missed**", None: "not measured"}[target.met]
            goal = f"≥ {target.goal:g}" if target.at_least else f"≤ {target.goal:g}"
            rows.append([target.name, target.shown, goal, verdict])
    met = sum(1 for section in sections for target in section.targets if target.met)
    total = sum(1 for section in sections for target in section.targets)
    mode = "a `--quick` smoke run (small sizes: not figures to quote)" if quick else "a full run"
    parts = [
        "# Benchmark results",
        "",
        f"Written by `python -m benchmarks{' --quick' if quick else ''}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {mode}, in {seconds / 60:.1f} minutes.",
        "",
        f"Machine and versions: {machine()}.",
        "",
        "## Targets",
        "",
        f"{met} of {total} targets met in this run.",
        "",
        table(["figure", "this run", "target", ""], rows, "lrrl"),
    ]
    for section in sections:
        parts += ["", f"## {section.title}", "", section.body.strip()]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    main()
