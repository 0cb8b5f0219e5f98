"""Past one machine: each daemon's calls in one shared Iceberg table, read by DuckDB and by any engine.

Each daemon keeps its DuckDB file as its buffer and its source of truth and appends what `llm_calls`
shows, with its own name added, to one Iceberg table in a SQL catalog (PostgreSQL, or SQLite on one
machine) on S3-compatible storage, partitioned by day (`sink.py`). One daemon at a time holds a lease in
the catalog database (`lease.py`) and, while it does, keeps the table healthy (`maintenance.py`) and
evaluates the rules whose scope is the fleet (`rules.py`), recording their alerts in the catalog
database, where every daemon sees them (`alerts.py`). `reads.py` is how the CLI and the fleet rules read
the table: DuckDB over the data files pyiceberg plans.

The room imports the rules (for the fleet rules) and the base modules, never the collector, the
daemon, the config or the CLI: the daemon hands it a function that gives the database connection.
pyiceberg, pyarrow and SQLAlchemy are the `fleet` extra and are imported only where they are used.
"""
