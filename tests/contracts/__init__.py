"""Contract suites: one set of tests per implementation family, run against each
implementation, so a new implementation is done when its family's suite passes.

::

    test_tiers.py          every primary store (local, obstore memory/local, S3 on moto,
                           Ceph, Supabase) and the cache tiers
    test_content_locks.py  file lock and PostgreSQL advisory lock, across real processes
    test_repository.py     the metadata repository on SQLite and on PostgreSQL
"""
