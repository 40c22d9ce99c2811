"""Contract suites: one set of tests per implementation family, run against each
implementation (content locks: file and PostgreSQL advisory; the repository: SQLite and
PostgreSQL; the tiers: ``test_tiers_contract.py``)."""
