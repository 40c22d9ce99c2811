"""Provider file ids: the cost of asking again, and the overhead of the first upload.

Run::

    .venv/bin/python bench/bench_providers.py            # full run, well under a minute
    .venv/bin/python bench/bench_providers.py --quick    # smoke run

The provider is ``testbed.provider_server.ProviderServer`` (Kimi's files API) on 127.0.0.1,
served by uvicorn in a thread of this process; filetier is the embedded default (SQLite +
local directory) configured as Kimi. Baselines are measured in the same run against the
same server:

1. ``get_provider_file_id`` of a file already uploaded there: median of N calls, and the
   number of requests the provider saw during the timed loop (must be 0), next to a bare
   ``AsyncOpenAI.files.retrieve`` round trip (what one network call would cost).
2. The first ``get_provider_file_id`` of a new file (one real upload) vs a bare
   ``AsyncOpenAI(...).files.create(file=(name, bytes), purpose="file-extract")`` of a file
   of the same size; every upload has new content so both really send it. Reported as
   filetier time / bare time and the absolute overhead in ms.
3. Gemini (``testbed.provider_servers.gemini.GeminiServer``, driven through ``google-genai``): a mapped
   id answered with 0 provider calls, and the first upload's throughput (resumable
   protocol, read from the stored file) vs the SDK's own ``client.aio.files.upload`` of a
   file of the same size from disk.
4. OpenAI over the Uploads API threshold (set low, so MiB stand for GiB): a mapped id with
   0 calls, and throughput of filetier's parallel parts vs the SDK's own
   ``uploads.upload_file_chunked`` of the same file to the same server.
5, 6. Anthropic and Mistral (``testbed.provider_servers``), through their own SDKs: the
   mapped lookup with the requests the provider saw (must be 0), and the first upload's
   throughput next to the SDK's own raw upload of a file of the same size to the same
   server (``files.upload`` / ``files.upload_async``).

The table is printed as markdown and written to bench/results/providers.md. The exit
code is always 0: this is a report, failing targets are marked FAIL in the table.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _table import NOTES, add, finish, scrub_environment, verdict

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for testbed.provider_server

KiB = 1 << 10
MiB = 1 << 20
RESULTS = Path(__file__).resolve().parent / "results" / "providers.md"
PURPOSE = "file-extract"

# Variables that would point Settings at a developer's real store or real providers.


@dataclasses.dataclass(frozen=True)
class Plan:
    lookup_calls: int
    lookup_warmup: int
    retrieve_calls: int
    upload_size: int
    upload_pairs: int
    small_size: int
    small_pairs: int


def make_plan(args: argparse.Namespace) -> Plan:
    if args.quick:
        return Plan(
            lookup_calls=200,
            lookup_warmup=20,
            retrieve_calls=50,
            upload_size=(args.size_mib or 8) * MiB,
            upload_pairs=args.repeats or 3,
            small_size=64 * KiB,
            small_pairs=5,
        )
    return Plan(
        lookup_calls=1_000,
        lookup_warmup=100,
        retrieve_calls=200,
        upload_size=(args.size_mib or 8) * MiB,
        upload_pairs=args.repeats or 30,
        small_size=64 * KiB,
        small_pairs=50,
    )


def gemini_settings(server: Any, home: Path) -> Any:
    from filetier import Settings

    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        gemini_api_key=server.api_key,
        gemini_base_url=server.url,
        home=home,
        fsync=False,
    )


def openai_large_settings(server: Any, home: Path, part: int) -> Any:
    from filetier import Settings

    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        openai_api_key=server.api_key,
        openai_base_url=server.base_url,
        openai_uploads_threshold_bytes=part,
        openai_upload_part_bytes=part,
        openai_upload_parallel=4,
        home=home,
        fsync=False,
    )


def kimi_settings(server: Any, home: Path) -> Any:
    from filetier import Settings

    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        kimi_api_key=server.api_key,
        kimi_base_url=server.base_url,
        home=home,
        fsync=False,
    )


# -- results --------------------------------------------------------------------------------


def fmt_ns(ns: float) -> str:
    if ns >= 1_000_000:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e3:.1f} µs"


def fmt_size(size: int) -> str:
    return f"{size // MiB} MiB" if size >= MiB else f"{size // KiB} KiB"


def p99(samples: list[int]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) >= 2 else samples[0]


# -- the benchmark --------------------------------------------------------------------------


class Bench:
    def __init__(self, plan: Plan, work: Path, server: Any, gemini: Any = None) -> None:
        self.plan = plan
        self.work = work
        self.server = server
        self.gemini = gemini

    def bare_client(self) -> Any:
        import openai

        # the same client settings filetier uses: no SDK retries
        return openai.AsyncOpenAI(
            api_key=self.server.api_key, base_url=self.server.base_url, max_retries=0, timeout=60
        )

    # -- 1. a file already mapped ------------------------------------------------------------

    async def mapped_lookup(self) -> None:
        from filetier import FileStore

        plan, server = self.plan, self.server
        home = self.work / "home-lookup"
        async with FileStore(kimi_settings(server, home)) as store:
            uploaded = await store.upload_file(b"quarterly numbers\n" * 1000, filename="report.txt")
            fid = str(uploaded.file_id)
            first = await store.get_provider_file_id(fid, "kimi")
            assert first.uploaded, first
            clock = time.perf_counter_ns
            get = store.get_provider_file_id
            for _ in range(plan.lookup_warmup):
                again = await get(fid, "kimi")
                assert not again.uploaded
            before = server.request_count()
            samples: list[int] = []
            for _ in range(plan.lookup_calls):
                start = clock()
                again = await get(fid, "kimi")
                samples.append(clock() - start)
            requests = server.request_count() - before
            assert again.provider_file_id == first.provider_file_id and not again.uploaded

        async with self.bare_client() as client:
            await client.files.retrieve(first.provider_file_id)  # warm the connection
            base: list[int] = []
            for _ in range(plan.retrieve_calls):
                start = clock()
                await client.files.retrieve(first.provider_file_id)
                base.append(clock() - start)
        shutil.rmtree(home, ignore_errors=True)

        med, bmed = statistics.median(samples), statistics.median(base)
        add(
            f"1. get_provider_file_id, already mapped (median of {plan.lookup_calls:,})",
            f"{fmt_ns(med)} (p99 {fmt_ns(p99(samples))})",
            f"bare files.retrieve round trip {fmt_ns(bmed)} (p99 {fmt_ns(p99(base))}, "
            f"N={plan.retrieve_calls})",
            f"{bmed / med:.1f}x faster",
            "informational",
            "info",
        )
        add(
            f"1b. provider requests during those {plan.lookup_calls:,} calls",
            f"{requests}",
            "-",
            "-",
            "0",
            verdict(requests == 0),
        )

    # -- 2. the first upload -----------------------------------------------------------------

    async def first_upload(self, size: int, pairs: int, label: str, *, target: bool) -> None:
        from filetier import FileStore

        server = self.server
        home = self.work / f"home-upload-{size}"
        ft_times: list[float] = []
        bare_times: list[float] = []
        per_call: list[int] = []
        async with FileStore(kimi_settings(server, home)) as store, self.bare_client() as client:
            # warm-up outside the timings: the provider client, connections, the tables
            warm = await store.upload_file(os.urandom(size), filename="warm.bin")
            await store.get_provider_file_id(warm.file_id, "kimi")
            await client.files.create(file=("warm.bin", os.urandom(size)), purpose=PURPOSE)

            for rep in range(pairs):
                ours = await store.upload_file(os.urandom(size), filename=f"ours-{rep}.bin")
                theirs = os.urandom(size)

                async def ft(fid: Any = ours.file_id) -> None:
                    before = server.request_count()
                    result = await store.get_provider_file_id(fid, "kimi")
                    per_call.append(server.request_count() - before)
                    assert result.uploaded, result

                async def bare(rep: int = rep, data: bytes = theirs) -> None:
                    created = await client.files.create(
                        file=(f"theirs-{rep}.bin", data), purpose=PURPOSE
                    )
                    assert created.bytes == size, created

                pair: list[tuple[list[float], Callable[[], Awaitable[None]]]] = [
                    (ft_times, ft),
                    (bare_times, bare),
                ]
                if rep % 2:
                    pair.reverse()  # neither side always goes first
                for samples, fn in pair:
                    start = time.perf_counter()
                    await fn()
                    samples.append(time.perf_counter() - start)
                print(
                    f"    {label} pair {rep + 1}/{pairs}: filetier {ft_times[-1] * 1e3:.1f} ms, "
                    f"bare {bare_times[-1] * 1e3:.1f} ms",
                    flush=True,
                )
        shutil.rmtree(home, ignore_errors=True)

        ft_med, bare_med = statistics.median(ft_times), statistics.median(bare_times)
        ft_best, bare_best = min(ft_times), min(bare_times)
        overhead = (ft_med - bare_med) * 1e3
        add(
            f"2{'' if target else 'b'}. first upload of {label}: get_provider_file_id vs bare "
            f"files.create (median of {pairs} pairs)",
            f"{ft_med * 1e3:.1f} ms (best {ft_best * 1e3:.1f})",
            f"{bare_med * 1e3:.1f} ms (best {bare_best * 1e3:.1f})",
            f"{ft_med / bare_med:.2f}x (overhead {overhead:+.1f} ms; "
            f"best/best {ft_best / bare_best:.2f}x)",
            "informational",
            "info",
        )
        NOTES.append(
            f"{label} uploads, ms in run order: filetier "
            + "/".join(f"{t * 1e3:.1f}" for t in ft_times)
            + "; bare "
            + "/".join(f"{t * 1e3:.1f}" for t in bare_times)
            + f"; provider requests per filetier call: {sorted(set(per_call))}"
        )

    async def uploads(self) -> None:
        plan = self.plan
        await self.first_upload(
            plan.upload_size, plan.upload_pairs, fmt_size(plan.upload_size), target=True
        )
        await self.first_upload(
            plan.small_size, plan.small_pairs, fmt_size(plan.small_size), target=False
        )

    # -- 3 and 4. Gemini and OpenAI over the Uploads threshold ------------------------------

    async def _mapped(
        self, label: str, store: Any, fid: str, provider: str, purpose: str, count: Any
    ) -> None:
        first = await store.get_provider_file_id(fid, provider, purpose)
        before = count()
        samples: list[int] = []
        for _ in range(self.plan.lookup_calls):
            start = time.perf_counter_ns()
            again = await store.get_provider_file_id(fid, provider, purpose)
            samples.append(time.perf_counter_ns() - start)
        requests = count() - before
        assert again.provider_file_id == first.provider_file_id and not again.uploaded
        add(
            f"{label}. {provider} get_provider_file_id, already mapped "
            f"(median of {self.plan.lookup_calls:,})",
            f"{fmt_ns(statistics.median(samples))}, {requests} provider requests",
            "-",
            "-",
            "0 requests",
            verdict(requests == 0),
        )

    def _throughput(
        self, label: str, size: int, ours: list[float], theirs: list[float], what: str
    ) -> None:
        mine, base = statistics.median(ours), statistics.median(theirs)
        add(
            f"{label}b. first upload of {fmt_size(size)}: MB/s (median of {len(ours)} pairs)",
            f"{size / mine / 1e6:.0f} MB/s",
            f"{what} {size / base / 1e6:.0f} MB/s",
            f"{base / mine:.2f}x the SDK's speed",
            "informational",
            "info",
        )

    async def gemini_rows(self) -> None:
        from google import genai
        from google.genai import types

        from filetier import FileStore

        server, pairs = self.gemini, max(3, self.plan.upload_pairs // 3)
        size = self.plan.upload_size
        home = self.work / "home-gemini"
        raw = self.work / "raw-gemini.bin"
        ours: list[float] = []
        theirs: list[float] = []
        client = genai.Client(
            api_key=server.api_key,
            vertexai=False,
            http_options=types.HttpOptions(base_url=server.url + "/", api_version="v1beta"),
        )
        async with FileStore(gemini_settings(server, home)) as store:
            fid = str((await store.upload_file(b"mapped\n" * 100, filename="m.txt")).file_id)
            await self._mapped("3", store, fid, "gemini", PURPOSE, lambda: len(server.requests))
            for rep in range(pairs + 1):  # the first pair warms up, untimed
                new = await store.upload_file(os.urandom(size), filename=f"g{rep}.bin")
                raw.write_bytes(os.urandom(size))
                start = time.perf_counter()
                assert (await store.get_provider_file_id(new.file_id, "gemini")).uploaded
                mid = time.perf_counter()
                await client.aio.files.upload(
                    file=raw, config={"mime_type": "application/octet-stream"}
                )
                end = time.perf_counter()
                if rep:
                    ours.append(mid - start)
                    theirs.append(end - mid)
        await client.aio.aclose()
        shutil.rmtree(home, ignore_errors=True)
        self._throughput("3", size, ours, theirs, "google-genai files.upload")

    async def openai_large_rows(self) -> None:
        import openai

        from filetier import FileStore

        server, pairs = self.server, max(3, self.plan.upload_pairs // 3)
        server.configure(allowed_purposes={"user_data", "file-extract"})
        size = self.plan.upload_size * 4
        part = max(MiB, size // 8)
        home = self.work / "home-openai-large"
        raw = self.work / "raw-openai.bin"
        ours: list[float] = []
        theirs: list[float] = []
        client = openai.AsyncOpenAI(
            api_key=server.api_key, base_url=server.base_url, max_retries=0, timeout=120
        )
        async with FileStore(openai_large_settings(server, home, part)) as store:
            fid = str((await store.upload_file(os.urandom(2 * part), filename="m.bin")).file_id)
            await self._mapped("4", store, fid, "openai", "user_data", server.request_count)
            for rep in range(pairs + 1):
                new = await store.upload_file(os.urandom(size), filename=f"o{rep}.bin")
                raw.write_bytes(os.urandom(size))
                start = time.perf_counter()
                assert (
                    await store.get_provider_file_id(new.file_id, "openai", "user_data")
                ).uploaded
                mid = time.perf_counter()
                await client.uploads.upload_file_chunked(
                    file=raw,
                    mime_type="application/octet-stream",
                    purpose="user_data",
                    part_size=part,
                )
                end = time.perf_counter()
                if rep:
                    ours.append(mid - start)
                    theirs.append(end - mid)
        await client.close()
        shutil.rmtree(home, ignore_errors=True)
        NOTES.append(
            f"OpenAI over the Uploads threshold: {fmt_size(size)} files in {fmt_size(part)} "
            "parts, filetier 4 in parallel; the SDK's upload_file_chunked sends them one by one"
        )
        self._throughput("4", size, ours, theirs, "openai uploads.upload_file_chunked")


# -- 5 and 6. Anthropic and Mistral, through their own SDKs ---------------------------------


def sdk_settings(provider: str, server: Any, home: Path) -> Any:
    from filetier import Settings

    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        home=home,
        fsync=False,
        **{f"{provider}_api_key": server.api_key, f"{provider}_base_url": server.url},
    )


Upload = Callable[[str, bytes], Awaitable[int]]
Lookup = Callable[[str], Awaitable[object]]


def bare_sdk(provider: str, server: Any) -> tuple[Upload, Lookup]:
    """The SDK's own raw upload and metadata lookup, with the settings filetier uses."""
    if provider == "anthropic":
        import anthropic

        client = anthropic.AsyncAnthropic(
            api_key=server.api_key, base_url=server.url, max_retries=0, timeout=60
        )

        async def upload(name: str, data: bytes) -> int:
            return int((await client.files.upload(file=(name, data))).size_bytes)

        return upload, client.files.retrieve_metadata
    from mistralai.client import Mistral

    mistral = Mistral(api_key=server.api_key, server_url=server.url, timeout_ms=60_000)

    async def upload_ocr(name: str, data: bytes) -> int:
        created = await mistral.files.upload_async(
            file={"file_name": name, "content": data}, purpose="ocr"
        )
        return int(created.size_bytes)

    async def lookup(file_id: str) -> object:
        return await mistral.files.retrieve_async(file_id=file_id)

    return upload_ocr, lookup


async def sdk_provider(plan: Plan, work: Path, provider: str, server: Any, row: int) -> None:
    from filetier import FileStore

    home = work / f"home-{provider}"
    size, pairs = plan.upload_size, min(plan.upload_pairs, 10)
    clock = time.perf_counter_ns
    ft_times: list[float] = []
    bare_times: list[float] = []
    bare_upload, bare_lookup = bare_sdk(provider, server)
    async with FileStore(sdk_settings(provider, server, home)) as store:
        uploaded = await store.upload_file(b"quarterly numbers\n" * 1000, filename="report.txt")
        first = await store.get_provider_file_id(uploaded.file_id, provider)
        assert first.uploaded, first
        for _ in range(plan.lookup_warmup):
            await store.get_provider_file_id(uploaded.file_id, provider)
        before = len(server.requests)
        samples: list[int] = []
        for _ in range(plan.lookup_calls):
            start = clock()
            again = await store.get_provider_file_id(uploaded.file_id, provider)
            samples.append(clock() - start)
        requests = len(server.requests) - before
        assert not again.uploaded
        await bare_lookup(first.provider_file_id)  # warm the connection
        base: list[int] = []
        for _ in range(plan.retrieve_calls):
            start = clock()
            await bare_lookup(first.provider_file_id)
            base.append(clock() - start)

        warm = await store.upload_file(os.urandom(size), filename="warm.bin")
        await store.get_provider_file_id(warm.file_id, provider)
        await bare_upload("warm.bin", os.urandom(size))
        for rep in range(pairs):
            ours = await store.upload_file(os.urandom(size), filename=f"ours-{rep}.bin")
            theirs = os.urandom(size)

            async def ft(fid: Any = ours.file_id) -> None:
                assert (await store.get_provider_file_id(fid, provider)).uploaded

            async def bare(rep: int = rep, data: bytes = theirs) -> None:
                assert await bare_upload(f"theirs-{rep}.bin", data) == size

            pair: list[tuple[list[float], Callable[[], Awaitable[None]]]] = [
                (ft_times, ft),
                (bare_times, bare),
            ]
            if rep % 2:
                pair.reverse()
            for times, fn in pair:
                start = time.perf_counter()
                await fn()
                times.append(time.perf_counter() - start)
    shutil.rmtree(home, ignore_errors=True)

    med, bmed = statistics.median(samples), statistics.median(base)
    add(
        f"{row}a. {provider}: get_provider_file_id, already mapped (median of "
        f"{plan.lookup_calls:,}); provider requests during the loop",
        f"{fmt_ns(med)} (p99 {fmt_ns(p99(samples))}); {requests} requests",
        f"bare SDK metadata lookup {fmt_ns(bmed)} (p99 {fmt_ns(p99(base))}, "
        f"N={plan.retrieve_calls})",
        f"{bmed / med:.1f}x faster",
        "0 requests",
        verdict(requests == 0),
    )
    ft_med, bare_med = statistics.median(ft_times), statistics.median(bare_times)
    add(
        f"{row}b. {provider}: first upload of {fmt_size(size)}, get_provider_file_id vs the "
        f"SDK's raw upload (median of {pairs} pairs)",
        f"{size / MiB / ft_med:.0f} MiB/s ({ft_med * 1e3:.1f} ms)",
        f"{size / MiB / bare_med:.0f} MiB/s ({bare_med * 1e3:.1f} ms)",
        f"{ft_med / bare_med:.2f}x time (overhead {(ft_med - bare_med) * 1e3:+.1f} ms)",
        "informational",
        "info",
    )


async def sdk_providers(plan: Plan, work: Path) -> None:
    from testbed.provider_servers.anthropic import AnthropicServer
    from testbed.provider_servers.mistral import MistralServer

    for row, (provider, server_type) in enumerate(
        (("anthropic", AnthropicServer), ("mistral", MistralServer)), start=5
    ):
        with server_type() as server:
            await sdk_provider(plan, work, provider, server, row)


# -- driver ---------------------------------------------------------------------------------


async def run_all(bench: Bench) -> None:
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("mapped lookups", bench.mapped_lookup),
        ("first uploads", bench.uploads),
        ("gemini", bench.gemini_rows),
        ("openai over the Uploads threshold", bench.openai_large_rows),
        ("anthropic and mistral", lambda: sdk_providers(bench.plan, bench.work)),
    ]
    for name, step in steps:
        print(f"== {name}", flush=True)
        try:
            await step()
        except Exception as exc:
            traceback.print_exc()
            add(name, "ERROR", "-", "-", "-", f"**ERROR** {type(exc).__name__}: {exc}"[:200])


def header(plan: Plan, load: tuple[float, float, float], elapsed: float) -> str:
    import openai

    import filetier

    return "\n".join(
        [
            f"# filetier provider benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M UTC})",
            "",
            f"- filetier {filetier.__version__}, openai {openai.__version__}, Python "
            f"{platform.python_version()}, {platform.platform()}, {os.cpu_count()} CPUs",
            "- provider: testbed.provider_server.ProviderServer (Kimi files API) on 127.0.0.1, "
            "uvicorn in a thread of this process; filetier: embedded default (SQLite + local "
            "directory), fsync=False",
            f"- lookups N={plan.lookup_calls:,} after {plan.lookup_warmup} warm-up calls; "
            f"uploads {fmt_size(plan.upload_size)} x {plan.upload_pairs} pairs and "
            f"{fmt_size(plan.small_size)} x {plan.small_pairs} pairs, order alternating",
            f"- total run time {elapsed:.0f} s; load average at start {load[0]:.2f}, "
            f"at end {os.getloadavg()[0]:.2f} (a load above the CPU count makes timings noisy)",
            "",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls for a smoke run")
    parser.add_argument("--size-mib", type=int, default=None, help="upload size (MiB)")
    parser.add_argument("--repeats", type=int, default=None, help="upload pairs")
    parser.add_argument("--dir", type=Path, default=None, help="where temp files go (/tmp)")
    args = parser.parse_args()
    scrub_environment()
    plan = make_plan(args)
    base = args.dir or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="filetier-bench-prov-", dir=base))
    os.chdir(work)  # Settings reads a .env from the working directory
    load = os.getloadavg()
    started = time.perf_counter()

    from testbed.provider_server import ProviderServer
    from testbed.provider_servers.gemini import GeminiServer

    server = gemini = None
    try:
        server = ProviderServer().start()
        gemini = GeminiServer().start()
        asyncio.run(run_all(Bench(plan, work, server, gemini)))
    except BaseException as exc:
        traceback.print_exc()
        add("setup", "ERROR", "-", "-", "-", f"**ERROR** {type(exc).__name__}: {exc}"[:200])
    finally:
        if gemini is not None:
            gemini.stop()
        if server is not None:
            try:
                server.stop()
            except RuntimeError:
                traceback.print_exc()
        os.chdir(base)
        shutil.rmtree(work, ignore_errors=True)

    finish(header(plan, load, time.perf_counter() - started), RESULTS)


if __name__ == "__main__":
    main()
