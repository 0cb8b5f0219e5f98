"""Writing rows for people (an aligned table) and for scripts (JSON objects, CSV with a header)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def write_rows(out: TextIO, columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> None:
    if fmt == "json":
        json.dump([{c: _json_value(v) for c, v in zip(columns, row, strict=True)} for row in rows], out, default=str)
        out.write("\n")
    elif fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([[_json_value(value) for value in row] for row in rows])
    else:
        cells = [[str(column) for column in columns]] + [
            ["" if v is None else str(_json_value(v)) for v in row] for row in rows
        ]
        widths = [max(len(row[index]) for row in cells) for index in range(len(columns))]
        numeric = [
            all(isinstance(row[index], int | float) for row in rows if row[index] is not None) and rows
            for index in range(len(columns))
        ]
        for number, row in enumerate(cells):
            out.write(
                "  ".join(
                    cell.rjust(width) if numeric[index] else cell.ljust(width)
                    for index, (cell, width) in enumerate(zip(row, widths, strict=True))
                ).rstrip()
                + "\n"
            )
            if number == 0:
                out.write("  ".join("-" * width for width in widths) + "\n")
