"""The README's promises: its quick start has exactly two commands, and its example SQL runs."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from spendwatch.collector.migrations import migrate

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_quick_start_is_two_commands_and_ci_runs_the_second():
    block = re.search(r"## Quick start\n\n```sh\n(.*?)```", README, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert commands == ["pip install . && spendwatch demo", "pip install '.[test]' && python -m pytest"]
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert commands[1] in ci


def test_example_queries_run_on_the_schema():
    block = re.search(r"### Five questions in SQL\n\n```sql\n(.*?)```", README, re.S).group(1)
    statements = [statement.strip() for statement in block.split(";") if statement.strip()]
    assert len(statements) == 5
    con = duckdb.connect()
    migrate(con)
    con.execute(
        """INSERT INTO llm_call_spans (trace_id, span_id, start_time, end_time, provider, request_model,
               input_tokens, output_tokens, cache_read_tokens, cost_usd, api_key_id, service_name, from_spendwatch)
           VALUES ('t', 's', now(), now(), 'openai', 'gpt-4o-mini', 100, 10, 40, 0.5, 'k', 'svc', true)"""
    )
    for statement in statements:
        assert con.execute(statement).fetchall(), statement
