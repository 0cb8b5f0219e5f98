"""What calls can be grouped by, and the SQL over `llm_calls` of each: one table for the report, `top`,
the rules' `group_by`, the dashboard's stacks and the alerts' top spenders.

`model` is the model that answered, else the one asked (a column of `llm_calls`); `service` is short for
`service_name`; `user` ... `conversation` say who a call was for; `tag.<name>` is a free-form tag; `day`
is a UTC day by integer arithmetic on the epoch (`date_trunc` on a TIMESTAMPTZ asks the ICU calendar for
every row: 15x the cost of the rest of a report's query at 10M calls).
"""

from __future__ import annotations

import re

GROUPS = {
    "provider": "provider",
    "model": "model",
    "request_model": "request_model",
    "response_model": "response_model",
    "api_key_id": "api_key_id",
    "service_name": "service_name",
    "service": "service_name",
    "operation": "operation",
    # who a call was for (collector/attribution.py)
    "user": "user",
    "tenant": "tenant",
    "feature": "feature",
    "agent": "agent",
    "conversation": "conversation",
}
# The attribution dimensions: each also a name in GROUPS. Everything that breaks spend down by who or what
# asked for it reads them from here.
ATTRIBUTION = ("user", "tenant", "feature", "agent", "conversation")
_TAG = re.compile(r"tag\.([A-Za-z0-9_.-]{1,64})")


def expression(name: str) -> str | None:
    """The SQL a group name stands for: one of `GROUPS`, or `tag.<name>` for a free-form tag; None if neither."""
    if name in GROUPS:
        return GROUPS[name]
    tag = _TAG.fullmatch(name)
    return f"tags['{tag.group(1)}']" if tag else None


DAY = "DATE '1970-01-01' + CAST(epoch_us(start_time) // 86400000000 AS INTEGER)"

# Who spent: the groups a budget alert names its top spenders in, the dashboard its top tables, and the
# daily latency histogram (spendwatch/latency.py) is kept for.
SPENDERS = {"keys": GROUPS["api_key_id"], "models": GROUPS["model"], "services": GROUPS["service_name"]}


def grouping_sets(groups: dict[str, str], within: tuple[str, ...] = ()) -> tuple[str, str, str]:
    """SQL for one pass over the calls grouped by each of `groups` ({label: expression}) apart, each also by
    the columns `within`: the row's label, the row's group value (as text, '(none)' for NULL), and the
    GROUPING SETS clause."""
    label = " ".join(f"WHEN grouping({expression}) = 0 THEN '{name}'" for name, expression in groups.items())
    value = " ".join(f"WHEN grouping({expression}) = 0 THEN {expression}" for expression in groups.values())
    sets = ", ".join("(" + ", ".join([*within, expression]) + ")" for expression in groups.values())
    return f"CASE {label} END", f"coalesce(CAST(CASE {value} END AS VARCHAR), '(none)')", f"GROUPING SETS ({sets})"


# The labels of the daemon's spend counters (`/metrics`): who spent, on what, through which key.
METRIC_LABELS: tuple[str, ...] = ("provider", "model", "service", "api_key_id", *ATTRIBUTION)
