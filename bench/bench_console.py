"""Web console benchmark: server time of the files page over 10,000 files.

Run::

    .venv/bin/python bench/bench_console.py              # 10,000 files, 30 requests per row
    .venv/bin/python bench/bench_console.py --files 2000 --repeats 10   # quicker

One owner is given ``--files`` file records (50 distinct contents under many names, sizes
and types, as hash-first uploads would make them), then the console app is driven in
process through httpx's ASGI transport, so the time measured is the server's alone: the
session check, the owner-scoped count and page query, and the template. Each row is the
median and p95 of ``--repeats`` requests for the first page, sorted and filtered as a
person would; the baseline is the JSON API listing of the same 50 records. Target: the
first page in under 300 ms of server time. Written to ``bench/results/console_latest.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path

import httpx

import _table
from filetier import FileStore, Settings
from filetier.interfaces.app import build_app

TOKEN = "bench-console-token-0123456789"  # noqa: S105 - a benchmark's own token
OWNER = "bench"
TARGET_MS = 300.0
TYPES = ("text/plain", "application/pdf", "image/png", "application/json", "text/csv")


async def populate(settings: Settings, count: int) -> None:
    async with FileStore(settings) as root:
        store = root.as_owner(OWNER)
        contents = []
        for i in range(50):
            data = f"content {i}\n".encode() * (i + 1)
            result = await store.upload_file(data, filename=f"seed-{i}.txt")
            contents.append(result)
        started = time.perf_counter()
        for i in range(count - len(contents)):
            seed = contents[i % len(contents)]
            await store.repo.insert_file(
                owner=OWNER,
                filename=f"report-{i:05d}-{'abcdefghij'[i % 10]}.{i % 7}",
                size=seed.size,
                mime_type=TYPES[i % len(TYPES)],
                sha256=seed.sha256,
                storage_key=f"sha256/{seed.sha256[:2]}/{seed.sha256[2:4]}/{seed.sha256}",
                metadata={},
                local_cache_path=None,
            )
        print(f"  {count:,} files recorded in {time.perf_counter() - started:.1f} s", flush=True)


async def timed(client: httpx.AsyncClient, url: str, repeats: int, **kwargs: object) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        answer = await client.get(url, **kwargs)  # type: ignore[arg-type]
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {answer.status_code}: {answer.text[:200]}")
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        options: dict[str, object] = {
            "home": Path(tmp),
            "fsync": False,
            "api_tokens": f"{OWNER}:{TOKEN}",
        }
        if args.database_url:
            options["database_url"] = args.database_url
        settings = Settings(**options)  # type: ignore[arg-type]
        await populate(settings, args.files)
        app = build_app(settings, bind_host="127.0.0.1", bind_port=80)
        runtime = app.state.runtime
        async with runtime.lifespan(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1"
            ) as client:
                form = await client.get("/signin")
                secret = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
                assert secret is not None
                signed = await client.post(
                    "/signin", data={"token": TOKEN, "csrf_token": secret.group(1)}
                )
                assert signed.status_code == 303, signed.text
                api = await timed(
                    client,
                    "/v1/files?limit=50",
                    args.repeats,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                first = await client.get("/files")
                rows = first.text.count('<td class="name"')
                if f"{args.files:,} files" not in first.text or rows != 50:
                    raise RuntimeError(f"the files page shows {rows} rows, not 50 of {args.files}")
                last = max(1, -(-args.files // 50))
                for label, url in (
                    ("files page 1, newest first", "/files"),
                    ("files page 1, sorted by name", "/files?sort=name"),
                    ("files page 1, sorted by size desc", "/files?sort=-size"),
                    ("files page 1, search 'report-01'", "/files?q=report-01"),
                    ("files page 1, type filter PDF", "/files?type=application%2Fpdf"),
                    (f"files last page ({last})", f"/files?page={last}"),
                ):
                    await timed(client, url, 3)  # warm the template and the query plan
                    times = await timed(client, url, args.repeats)
                    median = statistics.median(times)
                    _table.add(
                        f"{label}, {args.files:,} files (median / p95 ms)",
                        f"{median:.1f} / {p95(times):.1f}",
                        f"{statistics.median(api):.1f} (JSON API, 50 items)",
                        f"{median / statistics.median(api):.2f}x",
                        f"< {TARGET_MS:.0f} ms",
                        _table.verdict(median < TARGET_MS and p95(times) < TARGET_MS),
                    )
    db = "PostgreSQL" if args.database_url else "SQLite (embedded)"
    header = (
        f"# Web console files page ({args.files:,} files, {db}, {platform.python_version()},"
        f" {platform.machine()})\n\nServer time in process (httpx ASGI transport), "
        f"{args.repeats} requests per row.\n\n"
    )
    _table.finish(header, Path(__file__).parent / "results" / "console_latest.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--database-url", default=None, help="e.g. a PostgreSQL URL")
    args = parser.parse_args()
    _table.scrub_environment()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
