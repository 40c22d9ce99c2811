"""The reliability suites: what filetier must survive, run as real processes on loopback.

::

    reliability/
      backends.py   the store under test: embedded (SQLite + a local directory) or
                    production (a fresh PostgreSQL database + a Ceph RGW bucket, moto
                    when Ceph is not answering); a private PostgreSQL for restarts
      crash.py      SIGKILL a worker process at random points, then check the store
                    (``python -m reliability.crash --mode embedded --kills 200``)
      faults.py     S3 that stops, stalls and answers 500/503 mid-transfer (through a
                    fault-injecting proxy), PostgreSQL restarted under load, a disk that
                    fills up, a provider that rate-limits and times out
                    (``python -m reliability.faults``)
      report.py     the figures of one run as ``docs/reliability.md``

``scripts/reliability`` runs every suite in full and writes the report;
``tests/reliability/test_reliability_short.py`` runs a short version of each on every push.

Every check here is made from the outside: through the public ``FileStore`` API, a
listing of the primary store (a directory walk, or the S3 bucket listing) and a re-hash
of every object. A suite returns a summary dict; a non-empty ``violations`` list means
filetier broke a promise, and says which one.
"""
