"""``docs/reliability.md`` from one run's results (written by ``scripts/reliability``).

    python -m reliability.report --results DIR --command "scripts/reliability" --out F

``DIR`` holds what the suites wrote: ``crash-embedded.json``, ``crash-production.json``,
``faults.json``, ``load.json`` (their summaries), ``hostile-counts.json`` (hypothesis
examples per category), and ``hostile.xml`` / ``http.xml`` / ``secrets.xml`` (pytest's
JUnit reports). Any of them may
be missing; the report says so rather than inventing a figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


@dataclass
class JUnit:
    tests: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (test, first line)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @classmethod
    def read(cls, path: Path) -> JUnit | None:
        if not path.exists():
            return None
        root = ET.parse(path).getroot()  # noqa: S314 - our own file
        found = cls()
        for suite in root.iter("testsuite"):
            found.tests += int(suite.get("tests", 0))
            found.seconds += float(suite.get("time", 0))
            for case in suite.iter("testcase"):
                name = case.get("name", "?")
                for tag, bucket in (("failure", found.failed), ("error", found.failed)):
                    node = case.find(tag)
                    if node is not None:
                        bucket.append((name, _first_line(node.get("message", ""))))
                node = case.find("skipped")
                if node is not None:
                    found.skipped.append((name, _first_line(node.get("message", ""))))
        return found

    @property
    def passed(self) -> int:
        return self.tests - len(self.failed) - len(self.skipped)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:220]


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _mib(n: int) -> str:
    return f"{n / MiB:,.0f} MiB" if n >= MiB else f"{n:,} bytes"


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def crash_section(results: dict[str, dict[str, Any] | None]) -> list[str]:
    lines = ["## Crash: SIGKILL at random points", ""]
    runs = {mode: r for mode, r in results.items() if r is not None}
    if not runs:
        return [*lines, "Not run.", ""]
    lines += [
        "A worker process runs a random mix of uploads (path, bytes, stream, file object; "
        "1 KiB-8 MiB), downloads, streamed reads, deletes, `cleanup_cache` and "
        "`gc(grace_seconds=0)` against one store and is killed with SIGKILL after a random "
        "0-400 ms, or (a third of the time) a moment after an upload began. After every "
        "kill the store is checked from outside: every object hashes to its key; "
        "`verify()` finds nothing but orphans; every acknowledged upload that was not "
        "acknowledged as deleted lists and downloads intact (caches evicted); an "
        "acknowledged delete stays deleted; after one `gc(grace_seconds=0)` the objects "
        "are exactly the blob rows; stale temp files are removed by `cleanup`; and an "
        "upload/download/delete round trip works.",
        "",
        "| | " + " | ".join(runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    rows = [
        (
            "store",
            lambda r: (
                "SQLite + local directory"
                if r["mode"] == "embedded"
                else f"PostgreSQL (fresh database) + {r['s3_backend']} bucket"
            ),
        ),
        ("kills requested / performed", lambda r: f"{r['kills_requested']} / {r['kills']}"),
        (
            "kills survived (no violation)",
            lambda r: r["kills"] - len({v["kill"] for v in r["violations"]}),
        ),
        (
            "kills landing in: upload / delete / gc / cleanup / download / read / between",
            lambda r: " / ".join(
                str(r["kills_by_operation"].get(k, 0))
                for k in (
                    "upload",
                    "delete",
                    "gc",
                    "cleanup",
                    "download",
                    "read",
                    "between operations",
                )
            ),
        ),
        ("worker operations completed", lambda r: f"{r['worker_operations_completed']:,}"),
        (
            "acknowledged uploads (deduplicated)",
            lambda r: f"{r['acknowledged_uploads']:,} ({r['deduplicated_uploads']:,})",
        ),
        ("acknowledged upload bytes", lambda r: _mib(r["acknowledged_upload_bytes"])),
        ("acknowledged deletes", lambda r: f"{r['acknowledged_deletes']:,}"),
        (
            "uploads committed but killed before the acknowledgement",
            lambda r: r["committed_before_acknowledgement"],
        ),
        ("file downloads verified after kills", lambda r: f"{r['files_verified']:,}"),
        (
            "verifying reads retried because the S3 server timed out",
            lambda r: r.get("reads_retried_after_storage_timeouts", 0),
        ),
        ("bytes verified (SHA-256 of downloads)", lambda r: _mib(r["bytes_verified"])),
        (
            "orphan objects found / collected by gc",
            lambda r: f"{r['orphan_objects_found']} / {r['collected_by_gc']}",
        ),
        (
            "temp files left by kills (all removed by cleanup)",
            lambda r: r["temp_files_left_by_kills"],
        ),
        ("round trips after a kill", lambda r: r["round_trips"]),
        ("violations", lambda r: len(r["violations"])),
        ("seed", lambda r: r["seed"]),
        ("seconds", lambda r: r["seconds"]),
    ]
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(_cell(get(r)) for r in runs.values()) + " |")
    lines.append("")
    for mode, r in runs.items():
        if r.get("s3_note"):
            lines.append(f"Note ({mode}): ran on {r['s3_backend']}, not Ceph RGW: {r['s3_note']}.")
            lines.append("")
        for v in r["violations"]:
            lines.append(
                f"- **{mode} violation** `{v['check']}` first at kill {v['kill']} "
                f"({v['times']}x): {_cell(v['detail'])}"
            )
    if any(r["violations"] for r in runs.values()):
        lines.append("")
    return lines


def faults_section(faults: dict[str, Any] | None) -> list[str]:
    lines = ["## Faults", ""]
    if faults is None:
        return [*lines, "Not run.", ""]
    ok = faults["ok"]
    lines += [
        f"{faults['injected']} faults injected ({faults['rounds']} round(s) of each, "
        f"seed {faults['seed']}, {faults['seconds']} s): {ok} ended as expected, "
        f"{faults['injected'] - ok} did not. Each must end in a clear error or a "
        "successful retry within its bound (every call runs under a hard timeout of "
        "twice the bound plus 10 s; exceeding it is recorded as a hang); afterwards every "
        "acknowledged file reads back intact from the primary, `verify()` finds no "
        "damage, one `gc` leaves objects == blob rows, and a round trip works.",
        "",
        "| target | fault | expected | injected | outcomes | slowest, s | bound, s | as expected |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for o in faults["outcomes"]:
        groups.setdefault((o["target"], o["fault"], o["expected"]), []).append(o)
    for (target, fault, expected), found in groups.items():
        good = sum(1 for o in found if o["ok"])
        outcomes = Counter(o["outcome"] for o in found)
        shown = "; ".join(
            (f"{name} (x{n})" if n > 1 else name) for name, n in outcomes.most_common()
        )
        bad = [o for o in found if not o["ok"]]
        if bad:
            shown = f"**{shown}** — {bad[0]['detail']}"
        lines.append(
            f"| {_cell(target)} | {_cell(fault)} | {_cell(expected)} | {len(found)} | "
            f"{_cell(shown)} | {max(o['elapsed_s'] for o in found):.2f} | "
            f"{found[0]['bound_s']:g} | {good}/{len(found)}"
            + ("" if good == len(found) else " **✗**")
            + " |"
        )
    problems = [v["problem"] for v in faults["violations"] if "problem" in v]
    if problems:
        lines += ["", "Problems found by the checks after the faults:", ""]
        lines += [f"- {_cell(p)}" for p in problems]
    lines.append("")
    return lines


def load_section(load: dict[str, Any] | None) -> list[str]:
    lines = ["## Load (HTTP)", ""]
    if load is None:
        return [*lines, "Not run.", ""]
    ops = load["requests_by_op"]
    lat = load["latency_ms"]
    by_op = lat["by_op"]
    flat = load["flatness"]
    slow = load["slow_loris"]

    def op_latency(op: str) -> str:
        row = by_op.get(op)
        return f"{op} {row['p50_ms']:,} / {row['p95_ms']:,} / {row['p99_ms']:,} ms" if row else ""

    lines += [
        f"A real `filetier serve` (embedded default, bearer token) under {load['clients']} "
        f"clients for {load['seconds']:.0f} s of mixed uploads (1 KiB to "
        f"{_mib(load['max_size'])}), full downloads, ranged reads and deletes, every byte "
        "read back checked against its SHA-256; 20 slow-loris sockets in the middle "
        f"(seed {load['seed']}).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| requests | {load['requests']:,} ({load['requests_per_second']:,}/s): "
        + ", ".join(f"{n:,} {op}" for op, n in sorted(ops.items()))
        + " |",
        f"| unexpected errors | {load['unexpected_errors']:,}"
        + (f" ({_cell('; '.join(load['error_samples'][:3]))})" if load["error_samples"] else "")
        + " |",
        f"| latency p50 / p95 / p99 | {lat['p50']:,} / {lat['p95']:,} / {lat['p99']:,} ms ("
        + "; ".join(x for x in (op_latency(op) for op in sorted(by_op)) if x)
        + ") |",
        f"| bytes uploaded / downloaded / verified | {_mib(load['bytes_uploaded'])} / "
        f"{_mib(load['bytes_downloaded'])} / {_mib(load['bytes_verified'])} |",
        f"| flat after warm-up ({flat['warmup_seconds']:.0f} s) | "
        + ("yes" if flat["ok"] else "**no**")
        + f": RSS {flat['rss_mib']['after_warmup_min']}-{flat['rss_mib']['after_warmup_max']} "
        f"MiB (warm-up peak {flat['rss_mib']['warmup_peak']}, bound {flat['rss_mib']['bound']}); "
        f"open fds {flat['fds']['after_warmup_min']}-{flat['fds']['after_warmup_max']} "
        f"(band {flat['fds']['band_bound']}); disk cache at most "
        f"{_mib(flat['disk_cache']['max_bytes'])} of {_mib(flat['disk_cache']['cap_bytes'])}"
        + (f" ({_cell(flat['disk_cache']['note'])})" if flat["disk_cache"].get("note") else "")
        + " |",
        f"| slow-loris | {slow.get('healthz_probes', 0)} `/healthz` probes during it, "
        f"{slow.get('healthz_failed', 0)} failed, max {slow.get('healthz_max_ms')} ms; "
        f"{slow.get('closed_by_server', 0)}/{slow.get('sockets', 0)} slow sockets closed by "
        f"the server within {slow.get('closed_after_max_s')} s ("
        + _cell("; ".join(f"{k}: {v}" for k, v in sorted(slow.get("outcomes", {}).items())))
        + ") |",
        f"| server exit on SIGINT | {load['server_exit_code']} |",
        "",
    ]
    return lines


def tests_section(
    title: str, intro: str, junit: JUnit | None, counts: dict[str, int] | None = None
) -> list[str]:
    lines = [f"## {title}", "", intro, ""]
    if counts:
        lines += ["| inputs | hypothesis examples tried |", "|---|---|"]
        for name, n in sorted(counts.items()):
            lines.append(f"| {name} | {n:,} |")
        lines += [f"| **total** | **{sum(counts.values()):,}** |", ""]
    if junit is None:
        return [*lines, "Not run.", ""]
    lines.append(
        f"{junit.tests} tests: {junit.passed} passed, {len(junit.failed)} failed, "
        f"{len(junit.skipped)} skipped ({junit.seconds:.0f} s)."
    )
    lines.append("")
    for name, message in junit.failed:
        lines.append(f"- failed: `{name}` — {_cell(message)}")
    for name, message in junit.skipped:
        lines.append(f"- skipped: `{name}` — {_cell(message)}")
    if junit.failed or junit.skipped:
        lines.append("")
    return lines


def render(results: Path, command: str) -> str:
    crash = {
        "embedded": _load(results / "crash-embedded.json"),
        "production": _load(results / "crash-production.json"),
    }
    faults = _load(results / "faults.json")
    counts = _load(results / "hostile-counts.json")
    hostile = JUnit.read(results / "hostile.xml")
    secrets = JUnit.read(results / "secrets.xml")
    http = JUnit.read(results / "http.xml")
    load = _load(results / "load.json")

    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = (
        " with uncommitted changes" if _git("status", "--porcelain", "--untracked-files=no") else ""
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    total_bytes = sum(r["bytes_verified"] for r in crash.values() if r)
    kills = {m: r["kills"] for m, r in crash.items() if r}
    crash_violations = sum(len(r["violations"]) for r in crash.values() if r)
    seconds = (
        sum(r["seconds"] for r in crash.values() if r)
        + (faults["seconds"] if faults else 0)
        + sum(j.seconds for j in (hostile, secrets, http) if j)
        + (load["seconds"] if load else 0)
    )
    lines = [
        "# Reliability figures",
        "",
        f"Produced by `{command}` on {when}, commit `{commit}`{dirty}; "
        f"{platform.python_implementation()} {platform.python_version()} on "
        f"{platform.system()} {platform.machine()}"
        + f"; the suites ran for {seconds / 60:.0f} minutes.",
        "Every figure below is counted by the suites themselves in that run "
        "(`reliability/`, `tests/test_hostile_input.py`, `tests/test_http_*.py`, "
        "`tests/test_secrets.py`); run "
        "the command again to check them.",
        "",
        "| suite | result |",
        "|---|---|",
        "| crash | "
        + (
            ", ".join(f"{n} SIGKILLs {m}" for m, n in kills.items())
            + f"; {crash_violations} violations; {_mib(total_bytes)} verified"
            if kills
            else "not run"
        )
        + " |",
        "| faults | "
        + (
            f"{faults['injected']} injected, {faults['ok']} ended in a clear error or a retry "
            f"within bound, {faults['injected'] - faults['ok']} did not"
            if faults
            else "not run"
        )
        + " |",
        "| hostile input | "
        + (
            f"{sum((counts or {}).values()):,} generated and explicit inputs; "
            f"{hostile.passed}/{hostile.tests} tests pass"
            if hostile
            else "not run"
        )
        + " |",
        "| secrets | "
        + (f"{secrets.passed}/{secrets.tests} tests pass" if secrets else "not run")
        + " |",
        "| load (HTTP) | "
        + (
            f"{load['requests']:,} requests from {load['clients']} clients in "
            f"{load['seconds']:.0f} s, {load['unexpected_errors']} unexpected errors, "
            f"p50/p99 {load['latency_ms']['p50']:,}/{load['latency_ms']['p99']:,} ms, "
            f"{_mib(load['bytes_verified'])} verified; "
            + ("flat and slow-loris-proof" if load["ok"] else "**a check failed**")
            if load
            else "not run"
        )
        + " |",
        "| HTTP hostile input | "
        + (f"{http.passed}/{http.tests} tests pass" if http else "not run")
        + " |",
        "",
    ]
    lines += crash_section(crash)
    lines += faults_section(faults)
    lines += tests_section(
        "Hostile input",
        "Property-based (hypothesis) and explicit cases, against the embedded store and "
        "PostgreSQL: filenames through `upload_file(filename=...)` and `download_file` "
        "into the downloads folder (Unicode, NUL, 4 KiB, Windows device names, RTL "
        "overrides, lone surrogates, line separators); metadata (deep, huge, cyclic, NUL, "
        "non-JSON); MIME spoofing (PE, ELF, Mach-O, Java class, `#!` scripts, batch files "
        "named and declared as documents); download destinations built from the MCP "
        "filesystem server's escapes (CVE-2025-53110 prefix siblings, CVE-2025-53109 "
        "symlinks). Each must end in a clear `FiletierError` of the right class or a safe "
        "result.",
        hostile,
        counts,
    )
    lines += load_section(load)
    lines += tests_section(
        "HTTP hostile input",
        "schemathesis against the served OpenAPI document (every operation, generated "
        "bodies, parameters and headers; no 5xx, responses match the schema); tokens "
        "missing, wrong and another owner's, and CLI-created ones; a `Content-Disposition` header "
        "injection through a filename; slow clients (a head trickled past the head "
        "timeout gets 408, a body under the minimum rate is cut off and nothing of it is "
        "kept, honest slow clients are served).",
        http,
    )
    lines += tests_section(
        "Secrets",
        "Distinctive values for `SUPABASE_KEY`, `SUPABASE_SERVICE_KEY`, "
        "`FILETIER_S3_SECRET_ACCESS_KEY`, `FILETIER_S3_SESSION_TOKEN`, `KIMI_API_KEY`, "
        "`GLM_API_KEY`, `OPENAI_API_KEY`, `FILETIER_API_TOKENS` and database-URL "
        "passwords (plain, with a raw `@`, percent-encoded); operations that succeed and "
        "fail (library in production mode, provider with a refused key, missing bucket, "
        "unreachable S3 and database, Ceph refusing a wrong secret, CLI `doctor` and "
        "`--verbose` commands); every log record at DEBUG, stdout/stderr, error "
        "messages and tracebacks searched for any part of any secret.",
        secrets,
    )
    lines += [
        "## Reproduce",
        "",
        "```sh",
        command,
        "```",
        "",
        "It needs the machine's PostgreSQL on 127.0.0.1:5432 and, for production mode on "
        "Ceph, `scripts/start-ceph-rgw.sh` (otherwise moto is used and the report says "
        "so); it runs as root for the tmpfs mount and the private PostgreSQL server "
        "(`runuser -u postgres`). CI runs the short versions on every push: "
        "`tests/reliability/test_reliability_short.py`, `tests/reliability/test_load_short.py`, and the hostile-input, "
        "HTTP and secrets suites as they are.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.report")
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--command", default="scripts/reliability")
    parser.add_argument("--out", type=Path, default=Path("docs/reliability.md"))
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(args.results, args.command))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
