"""Feeding the tools teams already run, each in its own format: Prometheus metrics (`prometheus.py`) and
FinOps cost rows in FOCUS (`focus.py`)."""
