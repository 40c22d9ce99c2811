"""The short CI version of the reliability suites (``reliability/``): every push.

- crash: 15 SIGKILLs of a worker per mode (embedded; production on PostgreSQL and Ceph
  RGW, moto when Ceph does not take writes), each followed by the full set of checks;
- faults: one of each kind (S3 through the fault proxy, a stalled S3 server process,
  PostgreSQL crashed under load, a full disk, a rate-limiting and slow provider).

``scripts/reliability`` runs the full versions (200 kills per mode, every fault) and
writes ``docs/reliability.md``. A violation names the promise broken; the summary is
printed so a CI log shows the figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reliability.crash import Workload, run_crash_suite
from reliability.faults import run_faults

SHORT_KILLS = 15


def show(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=1, default=str)


@pytest.mark.parametrize("mode", ["embedded", "production"])
def test_short_crash_run_keeps_every_promise(tmp_path: Path, mode: str) -> None:
    summary = run_crash_suite(
        mode,  # type: ignore[arg-type]
        SHORT_KILLS,
        root=tmp_path / "crash",
        workload=Workload(max_size=4 * 1024 * 1024),
    )
    print(show(summary))
    assert summary["violations"] == [], show(summary["violations"])
    assert summary["kills"] == SHORT_KILLS
    assert summary["round_trips"] == SHORT_KILLS  # the store opened and worked each time
    assert summary["acknowledged_uploads"] > 0
    assert summary["bytes_verified"] > 0


@pytest.mark.parametrize("suite", ["s3", "s3-process", "pg", "disk", "provider"])
async def test_short_fault_ends_in_a_clear_error_or_a_retry(tmp_path: Path, suite: str) -> None:
    summary = await run_faults([suite], short=True, root=tmp_path / "faults", seed=1)
    print(show(summary))
    assert summary["injected"] > 0
    assert summary["violations"] == [], show(summary["violations"])
