"""How long the ``filetier`` command takes, whole process, against ``python3 -c pass``.

Run::

    .venv/bin/python bench/bench_cli.py              # 21 rounds
    .venv/bin/python bench/bench_cli.py --quick      # CI smoke run: 3 rounds
    .venv/bin/python bench/bench_cli.py --rounds 41
    .venv/bin/python bench/bench_cli.py --against /work/main   # also time another checkout

An agent that shells out to ``filetier`` pays the interpreter's start and every import on
each call, so this times what it feels: a fresh process per run, like hyperfine. Each
round runs every command once, in an order rotated from round to round (so none always
follows a disk-heavy one), and the table compares medians. ``python3 -c pass`` (the same
interpreter) runs in the same rounds: it is the floor no Python command can go under,
and the ratio against it says how much of a command is filetier's own.

The store is the embedded default (SQLite + local directory) in a temporary home with one
small file, so ``stat`` and ``ls`` open a store whose database is already at its newest
schema, as every call after the first does. The exit code is always 0: this is a report.

``--against SRC`` runs the same commands from another checkout's ``src/`` (put first on
``PYTHONPATH``, same interpreter and packages, same store) in the same rounds, and adds
a row per command comparing it with this one: a before/after that shares the machine's
load. Its database must be at the same schema as this checkout's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _table import NOTES, add, finish, scrub_environment, verdict

RESULTS = Path(__file__).resolve().parent / "results" / "cli.md"

# Targets from issue 12, in seconds (medians, whole process, on a 2-core machine).
TARGETS = {"--help": 0.15, "--version": 0.15, "stat ID": 0.35, "ls": 0.35}


def filetier_command() -> list[str]:
    """The installed ``filetier`` script next to this interpreter, else the same entry
    point through ``-c`` (a checkout that was never installed)."""
    script = Path(sys.executable).parent / "filetier"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from filetier.interfaces.cli.app import main; main()"]


def against_command(src: Path) -> list[str]:
    """The other checkout's CLI, entered the way ``filetier_command`` enters ours: through
    its own ``front`` when it has one (the installed script's entry), else ``app``."""
    entry = "front" if (src / "src/filetier/interfaces/cli/front.py").exists() else "app"
    return [sys.executable, "-c", f"from filetier.interfaces.cli.{entry} import main; main()"]


def time_once(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{argv[-1]!r} exited {done.returncode}: {done.stderr.decode()[:300]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, for a CI smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 21)")
    parser.add_argument(
        "--against", type=Path, default=None, help="another checkout to time in the same rounds"
    )
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 21)
    scrub_environment()
    home = Path(tempfile.mkdtemp(prefix="filetier-bench-cli-"))
    env = {**os.environ, "FILETIER_HOME": str(home)}
    cli = filetier_command()
    try:
        sample = home / "note.txt"
        sample.write_text("a small file for stat and ls\n")
        upload = subprocess.run(
            [*cli, "upload", str(sample)], env=env, capture_output=True, text=True, check=True
        )
        file_id = upload.stdout.split()[0]
        commands = {
            "python3 -c pass": [sys.executable, "-c", "pass"],
            "--help": [*cli, "--help"],
            "--version": [*cli, "--version"],
            "stat ID": [*cli, "stat", file_id],
            "ls": [*cli, "ls"],
        }
        envs = dict.fromkeys(commands, env)
        if args.against is not None:
            other = against_command(args.against)
            other_env = {**env, "PYTHONPATH": str(args.against.resolve() / "src")}
            for name in TARGETS:
                argv = commands[name]
                commands[f"{name} (against)"] = [*other, *argv[len(cli) :]]
                envs[f"{name} (against)"] = other_env
        names = list(commands)
        samples: dict[str, list[float]] = {name: [] for name in names}
        load = os.getloadavg()
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(time_once(commands[name], envs[name]))
    finally:
        shutil.rmtree(home, ignore_errors=True)

    floor = statistics.median(samples["python3 -c pass"])
    add("python3 -c pass", f"{floor * 1000:.0f} ms", "-", "1.00x", "floor", "info")
    for name, target in TARGETS.items():
        median = statistics.median(samples[name])
        add(
            f"filetier {name}",
            f"{median * 1000:.0f} ms",
            f"python3 -c pass {floor * 1000:.0f} ms",
            f"{median / floor:.1f}x",
            f"<= {target * 1000:.0f} ms",
            verdict(median <= target),
        )
    if args.against is not None:
        for name in TARGETS:
            ours = statistics.median(samples[name])
            theirs = statistics.median(samples[f"{name} (against)"])
            add(
                f"filetier {name}, this vs {args.against}",
                f"{ours * 1000:.0f} ms",
                f"{theirs * 1000:.0f} ms",
                f"{ours / theirs:.2f}x",
                "-",
                "info",
            )
    for name, values in samples.items():
        NOTES.append(f"{name}: " + " / ".join(f"{v * 1000:.0f}" for v in values) + " ms")
    header = "\n".join(
        [
            f"# filetier CLI start-up ({datetime.now(UTC):%Y-%m-%d %H:%M UTC})",
            "",
            f"- {rounds} rounds, one fresh process per run, order rotated every round; "
            f"medians. Command: {' '.join(cli)}",
            f"- Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; load average at "
            f"start {load[0]:.2f}, at end {os.getloadavg()[0]:.2f} (a loaded machine slows "
            "every row, the floor included)",
            "",
            "",
        ]
    )
    finish(header, RESULTS)


if __name__ == "__main__":
    main()
