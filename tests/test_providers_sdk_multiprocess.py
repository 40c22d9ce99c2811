"""Upload-once across processes holds for the SDK providers too (Anthropic here): four
real interpreters (``tests/support/procs/pv_get_id.py``) sharing one embedded SQLite home make 24
concurrent calls for content Anthropic does not hold yet; exactly one upload reaches it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from filetier import FileStore
from testbed.provider_servers.anthropic import AnthropicServer
from tests.support.procs import Child, StoreLayout

KEY = "sk-ant-multiprocess-7c2e"
PROCESSES = 4
TASKS = 6


async def test_callers_in_four_processes_upload_to_anthropic_once(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path).make_dirs()
    data = b"one anthropic upload, however many ask\n" * 1000
    async with FileStore(layout.settings()) as store:
        fid = str((await store.upload_file(data, filename="race.txt")).file_id)

    with AnthropicServer(KEY) as server:
        env = layout.env(
            ANTHROPIC_API_KEY=KEY,
            ANTHROPIC_BASE_URL=server.url,
            PV_CONTROL_URL=server.url,
            FILETIER_PROVIDER_TIMEOUT_SECONDS="10",
        )
        go = tmp_path / "go"
        server.set_delay(0.5)  # every caller is in flight while the upload is
        with contextlib.ExitStack() as stack:
            children = [
                stack.enter_context(
                    Child(
                        "pv_get_id",
                        "--round",
                        fid,
                        "--tasks",
                        str(TASKS),
                        "--provider",
                        "anthropic",
                        "--go",
                        go,
                        env=env,
                        cwd=tmp_path,
                    )
                )
                for _ in range(PROCESSES)
            ]
            for child in children:
                child.expect("ready")
            Path(f"{go}-0").touch()
            done = [child.expect("done") for child in children]
            assert [child.finish() for child in children] == [0] * PROCESSES

        results = [r for d in done for r in d["results"]]
        assert [r for r in results if "error" in r] == []
        assert len(results) == PROCESSES * TASKS
        (pid,) = {r["provider_file_id"] for r in results}
        assert sum(r["uploaded"] for r in results) == 1
        assert server.upload_count == 1
        assert server.file_bytes(pid) == data
