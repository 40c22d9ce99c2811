"""The short CI version of the HTTP load suite (``reliability/load.py``).

A real ``filetier serve`` process, 16 clients for ~20 s, uploads capped at 4 MiB: no
unexpected status, every byte read back verified, the server's RSS, descriptors and disk
cache flat after the warm-up, and 20 slow-loris connections leave other clients served
promptly. ``python -m reliability.load --seconds 300 --clients 64`` is the full version.
"""

from __future__ import annotations

import json
from pathlib import Path

from reliability.load import MiB, run_load


def test_short_http_load_verifies_every_byte_and_shrugs_off_slow_loris(tmp_path: Path) -> None:
    summary = run_load(20, 16, max_size=4 * MiB, root=tmp_path / "load")
    shown = json.dumps(summary, indent=1)
    print(shown)
    assert summary["unexpected_errors"] == 0, shown
    assert summary["requests_by_op"].get("download", 0) > 0, shown
    assert summary["requests_by_op"].get("range", 0) > 0, shown
    assert summary["requests_by_op"].get("get_deleted", 0) > 0, shown
    assert summary["bytes_verified"] > 0, shown
    assert summary["bytes_verified"] == summary["bytes_downloaded"], shown
    assert summary["largest_upload"] <= 4 * MiB, shown
    assert summary["slow_loris"]["ok"], shown
    assert summary["flatness"]["ok"], shown
    assert summary["server_exit_code"] == 0, shown
    assert summary["ok"], shown
