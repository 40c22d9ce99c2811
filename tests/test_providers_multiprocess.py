"""Upload-once holds across processes: many callers, one upload reaching the provider.

Four real interpreters (``tests/support/procs/pv_get_id.py``), configured only by the
environment and sharing one embedded SQLite home, make 50 concurrent
``get_provider_file_id`` calls between them for content no provider holds yet. Inside a
process one task uploads (single flight); across processes a lock of the same name lets
one upload while the others wait and then find its row. A go file starts each round in
every child at once, and the provider holds each upload for a moment so that every
caller is in flight during it. The children run both rounds so that the interpreters
(a few seconds to start on a loaded machine) start only once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from filetier import FileStore
from testbed.provider_server import ProviderServer
from tests.support.procs import Child, StoreLayout

KEY = "sk-kimi-multiprocess-3e9d1c7a"
PROCESSES = 4
CALLS = 50


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as provider:
        yield provider


def split(total: int, parts: int) -> list[int]:
    """``split(50, 4) == [13, 13, 12, 12]``."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def answers(done: list[dict[str, Any]], uploads: int) -> list[dict[str, Any]]:
    """One round's results from every child, checked for errors and completeness."""
    # Each process saw the upload(s) once all its callers had their answer.
    assert [d["uploads_seen"] for d in done] == [uploads] * PROCESSES
    results = [r for d in done for r in d["results"]]
    assert [r for r in results if "error" in r] == []
    assert len(results) == CALLS
    return results


async def test_fifty_callers_in_four_processes_upload_new_content_once(
    tmp_path: Path, server: ProviderServer
) -> None:
    layout = StoreLayout(tmp_path).make_dirs()
    single = b"one upload, however many ask\n" * 1000
    shared = b"same bytes under two names\n" * 1000
    async with FileStore(layout.settings()) as store:
        fid = str((await store.upload_file(single, filename="race.txt")).file_id)
        first = str((await store.upload_file(shared, filename="first.txt")).file_id)
        second = str((await store.upload_file(shared, filename="second.txt")).file_id)

    env = layout.env(
        KIMI_API_KEY=server.api_key,
        KIMI_BASE_URL=server.base_url,
        PV_CONTROL_URL=server.url,
        FILETIER_PROVIDER_RETRY_ATTEMPTS="3",
        FILETIER_PROVIDER_MAX_RETRY_WAIT_SECONDS="1",
        FILETIER_PROVIDER_TIMEOUT_SECONDS="10",
    )
    go = tmp_path / "go"
    server.set_delay(0.5, "/files", method="POST")
    with contextlib.ExitStack() as stack:
        children = [
            stack.enter_context(
                Child(
                    "pv_get_id",
                    "--round",
                    fid,
                    "--round",
                    f"{first},{second}",
                    "--tasks",
                    str(tasks),
                    "--go",
                    go,
                    env=env,
                    cwd=tmp_path,
                )
            )
            for tasks in split(CALLS, PROCESSES)
        ]
        for child in children:
            child.expect("ready")

        # Round 0: one new file, 50 callers.
        Path(f"{go}-0").touch()
        one = answers([child.expect("done") for child in children], uploads=1)
        assert server.upload_count == 1
        assert server.request_count("POST", "/files") == 1
        (pid,) = {r["provider_file_id"] for r in one}
        assert sum(r["uploaded"] for r in one) == 1
        assert server.file_bytes(pid) == single

        # Round 1: two files with identical bytes, 25 callers each: one more upload.
        Path(f"{go}-1").touch()
        two = answers([child.expect("done") for child in children], uploads=2)
        assert server.upload_count == 2
        assert {r["file_id"] for r in two} == {first, second}
        (shared_pid,) = {r["provider_file_id"] for r in two}
        assert sum(r["uploaded"] for r in two) == 1
        assert shared_pid != pid
        assert server.file_bytes(shared_pid) == shared

        assert [child.finish() for child in children] == [0] * PROCESSES

    settings = layout.settings(kimi_api_key=KEY, kimi_base_url=server.base_url)
    async with FileStore(settings) as store:
        assert (await store.stat(fid)).provider_file_ids == {"kimi": pid}
        for shared_fid in (first, second):
            assert (await store.stat(shared_fid)).provider_file_ids == {"kimi": shared_pid}
        seen = server.requests
        again = await store.get_provider_file_id(second, "kimi")
        assert (again.provider_file_id, again.uploaded) == (shared_pid, False)
        assert server.requests == seen
        assert len(await store.providers.repo.for_hash(again.sha256)) == 1
