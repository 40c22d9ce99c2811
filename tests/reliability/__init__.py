"""The short CI versions of the reliability suites in ``reliability/`` (every push).

``scripts/reliability`` runs the full versions and writes ``docs/reliability.md``.
"""
