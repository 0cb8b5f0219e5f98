"""One entry point for every rule kind: what the engine, `rules run` and the tests call."""

from __future__ import annotations

from datetime import datetime

from spendwatch.rules.anomaly import evaluate_anomaly
from spendwatch.rules.budget import Query, evaluate_budget
from spendwatch.rules.config import Rule, RulesConfig
from spendwatch.rules.finding import Finding
from spendwatch.rules.keys import evaluate_keys
from spendwatch.rules.reconcile import evaluate_reconcile

EVALUATORS = {
    "budget": evaluate_budget,
    "anomaly": evaluate_anomaly,
    "keys": evaluate_keys,
    "reconcile": evaluate_reconcile,
}


def evaluate(rule: Rule, now: datetime, config: RulesConfig, query: Query) -> list[Finding]:
    return EVALUATORS[rule.kind](rule, now, config, query)
