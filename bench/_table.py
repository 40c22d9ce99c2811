"""What every benchmark here shares: the result table, its rows, and a clean environment.

Each benchmark is its own process, so the module-level ``ROWS`` and ``NOTES`` are per run.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

# Settings a developer's shell may carry that would point a benchmark at shared state.
_ENV_PREFIXES = ("FILETIER_", "SUPABASE_")
_ENV_NAMES = (
    "DATABASE_URL",
    "FILE_CACHE_DIR",
    "MAX_MEMORY_CACHE_SIZE",
    "MAX_CACHE_SIZE_MB",
    "MAX_CACHE_AGE_DAYS",
)


@dataclasses.dataclass
class Row:
    metric: str
    filetier: str
    baseline: str
    ratio: str
    target: str
    verdict: str  # PASS, FAIL, info, ERROR


ROWS: list[Row] = []
NOTES: list[str] = []


def add(metric: str, filetier: str, baseline: str, ratio: str, target: str, verdict: str) -> None:
    ROWS.append(Row(metric, filetier, baseline, ratio, target, verdict))
    print(f"  -> {metric}: {filetier} vs {baseline} ({ratio}; {target}) {verdict}", flush=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


def table() -> str:
    head = "| metric | filetier | baseline | ratio | target | pass/fail |"
    sep = "|---|---|---|---|---|---|"
    body = [
        f"| {r.metric} | {r.filetier} | {r.baseline} | {r.ratio} | {r.target} | {r.verdict} |"
        for r in ROWS
    ]
    return "\n".join([head, sep, *body])


def scrub_environment() -> None:
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES) or name in _ENV_NAMES:
            del os.environ[name]


def make_random_file(path: Path, size: int, chunk: int = 1024 * 1024) -> None:
    with path.open("wb", buffering=0) as out:
        left = size
        while left:
            n = min(chunk, left)
            out.write(os.urandom(n))
            left -= n


def finish(header: str, results: Path) -> None:
    """Print the report (header, table, notes, failures), save it, and leave.

    Leaves through ``os._exit``: obstore may abort the interpreter at exit.
    """
    report = header + table() + "\n"
    if NOTES:
        report += "\n" + "\n".join(f"- {n}" for n in NOTES) + "\n"
    failed = [r.metric for r in ROWS if "FAIL" in r.verdict or "ERROR" in r.verdict]
    if failed:
        report += "\n**FAILED:** " + "; ".join(failed) + "\n"
    print()
    print(report)
    try:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(report)
        print(f"(written to {results})")
    except OSError as exc:
        print(f"(could not write {results}: {exc})")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
