"""Ask for files' provider ids from many concurrent tasks in one process, in rounds.

    pv_get_id.py --round ID[,ID...] [--round ...] --tasks N --provider kimi --go PREFIX

Configured only by the environment, like a user's process: ``FILETIER_HOME`` and the
other store settings, ``KIMI_API_KEY``/``KIMI_BASE_URL`` (or GLM_/OPENAI_), and
``PV_CONTROL_URL``, the loopback provider's control API. Prints ``{"event": "ready"}``
once the store is open. Round ``r`` waits for the go file ``PREFIX-r``, then runs N
concurrent calls (task ``i`` asks for the round's ``ids[i % len(ids)]``) and prints
``{"event": "done", "round": r, "results": [...], "uploads_seen": U}`` where U is the
provider's upload count once every task here has its answer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from _child import emit, run, wait_for_go

from filetier import FileStore
from filetier.errors import FiletierError

# The control client lives with the loopback provider in testbed/, at the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from testbed.provider_server import ProviderControl


async def main(args: argparse.Namespace) -> None:
    async with FileStore() as store:
        emit({"event": "ready", "pid": os.getpid()})
        for number, spec in enumerate(args.round):
            file_ids = spec.split(",")
            await wait_for_go(f"{args.go}-{number}")

            async def one(index: int, file_ids: list[str] = file_ids) -> dict[str, Any]:
                fid = file_ids[index % len(file_ids)]
                try:
                    result = await store.get_provider_file_id(fid, args.provider)
                except FiletierError as exc:
                    return {"file_id": fid, "error": f"{type(exc).__name__}: {exc}"}
                return {
                    "file_id": fid,
                    "provider_file_id": result.provider_file_id,
                    "uploaded": result.uploaded,
                }

            results = await asyncio.gather(*(one(i) for i in range(args.tasks)))
            with ProviderControl(os.environ["PV_CONTROL_URL"]) as control:
                uploads_seen = control.stats()["upload_count"]
            emit(
                {
                    "event": "done",
                    "round": number,
                    "results": results,
                    "uploads_seen": uploads_seen,
                }
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--round", action="append", required=True, metavar="ID[,ID...]")
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--provider", default="kimi")
    parser.add_argument("--go", required=True, metavar="PREFIX")
    run(main(parser.parse_args()))
