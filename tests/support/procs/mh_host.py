"""One "host" of the multi-host tests: run a list of ``filetier`` CLI commands.

    mh_host.py PLAN.json

``PLAN.json`` is ``{"go": PATH | null, "parallel": N, "commands": [{"argv": [...],
"delay": SECONDS}, ...]}``. The host waits for the go file, then runs each command as

    sys.executable -c "from filetier.interfaces.cli.app import main; main()" *argv

(at most ``parallel`` at a time, each after its own ``delay``), in this process's
environment: the test gives every host its own ``FILETIER_HOME`` and the shared
``DATABASE_URL`` and bucket. Prints ``{"event": "ready"}`` first, then one
``{"event": "ran", "argv": ..., "code": ..., "stdout": ..., "stderr": ...}`` per command
as it ends, and ``{"event": "done"}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _child import emit, run, wait_for_go

CLI = "from filetier.interfaces.cli.app import main; main()"
# A CLI command that hangs fails its test instead of stalling the suite.
COMMAND_TIMEOUT = 120.0


async def run_command(command: dict[str, Any], gate: asyncio.Semaphore) -> None:
    argv = [str(a) for a in command["argv"]]
    await asyncio.sleep(float(command.get("delay", 0.0)))
    async with gate:
        started = time.time()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CLI,
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT)
        except TimeoutError:
            proc.kill()
            stdout, stderr = await proc.communicate()
        emit(
            {
                "event": "ran",
                "argv": argv,
                "code": proc.returncode,
                "stdout": stdout.decode(errors="replace"),
                "stderr": stderr.decode(errors="replace"),
                "started": started,
                "seconds": time.time() - started,
            }
        )


async def main(plan_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    emit({"event": "ready", "pid": os.getpid()})
    await wait_for_go(plan.get("go"))
    gate = asyncio.Semaphore(int(plan.get("parallel", 1)))
    await asyncio.gather(*(run_command(c, gate) for c in plan["commands"]))
    emit({"event": "done"})


if __name__ == "__main__":
    run(main(sys.argv[1]))
