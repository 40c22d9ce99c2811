"""The benchmarks' short versions run in CI as smoke tests: every row is measured and
printed, none ends in an error. No timing is asserted (a shared CI machine makes it
noise); the numbers are read in the benchmarks' own tables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_bench(*args: str, timeout: float) -> str:
    proc = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "**ERROR**" not in proc.stdout, proc.stdout[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_bench_core_quick_measures_every_row() -> None:
    out = run_bench("bench/bench_core.py", "--quick", "--repeats", "1", timeout=600)
    for row in (
        "| 1. upload",
        "| 2. re-upload",
        "| 3. download",
        "| 4. memory hit",
        "| 5. 300 uploads of 4 KiB",
        "| 5b. 300 uploads of 4 KiB",
        "| 6. peak RSS",
    ):
        assert row in out, out[-3000:]


@pytest.mark.slow
def test_bench_production_quick_measures_every_row_against_moto() -> None:
    """PostgreSQL metadata and an S3 primary (moto here; Ceph in the full benchmark)."""
    out = run_bench("bench/bench_production.py", "--quick", "--s3", "moto", timeout=600)
    for row in ("| 1a. upload", "| 1b. download", "| 2. stat(file_id)", "| 3. 300 uploads"):
        assert row in out, out[-3000:]


@pytest.mark.slow
def test_bench_http_quick_measures_every_row() -> None:
    """It read /metrics with a pattern prometheus_client's "3.0" did not match, and failed
    unnoticed until this ran in CI."""
    out = run_bench("bench/bench_http.py", "--quick", timeout=600)
    for row in ("| download 128 MiB, curl, vs bare Starlette", "| 64 clients, 100 small files"):
        assert row in out, out[-3000:]


@pytest.mark.slow
def test_bench_small_parts_quick_measures_every_variant() -> None:
    """The part-by-part budget of row 5: each variant stubs a part in its own child."""
    out = run_bench("bench/bench_small_parts.py", "--quick", timeout=600)
    for variant in (
        "fsync off: full |",
        "fsync off: no content lock |",
        "fsync off: no object file |",
        "fsync off: no file, no lock |",
        "fsync off: no file, no lock, no row |",
    ):
        assert variant in out, out[-3000:]
