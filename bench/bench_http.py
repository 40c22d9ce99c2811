"""HTTP download benchmark: filetier's server against bare static-file servers, same run.

Run::

    .venv/bin/python bench/bench_http.py            # 1 GiB file, 15 s load runs, a few minutes
    .venv/bin/python bench/bench_http.py --quick    # 128 MiB, 5 s load runs, well under a minute

Three servers serve the *same bytes* (filetier's stored object, so one page-cache copy):

- **filetier**: ``filetier.interfaces.serve.run`` (uvicorn, bearer token, metrics, Host check),
  as configured by default: the first download hashes the copy as it is sent, later ones
  of the unchanged copy within ``FILETIER_VERIFIED_COPY_SECONDS`` (300 s) are not hashed
  again (the counters in ``/metrics`` are printed to show which happened);
- **filetier, hash every time**: the same with ``FILETIER_VERIFIED_COPY_SECONDS=0``: every
  byte of every whole-file download hashed as it is sent, so at most one core's SHA-256;
- **bare Starlette**: uvicorn with the same settings and one ``FileResponse`` route,
  ``chunk_size = 1 MiB``: the target is filetier >= 0.8x of it;
- **filetier link**: the first server again, through a download link
  (``GET /links/{token}``, no token): the same code path, so the same speed is expected;
- **sendfile**: Python's ``http.server`` answering with ``socket.sendfile`` (zero copy),
  the ceiling of the machine, shown for information.

Large file: ``curl -o /dev/null`` of the whole file, best of ``--repeats`` (default 3) per
server, warm page cache. Small files: 64 concurrent keep-alive clients (``wrk``, or an httpx
asyncio load generator when ``wrk`` is absent) fetch a mix of cached small files for a fixed
time; requests/s and p50/p99 latency. The table is printed as markdown and written to
``bench/results/http_latest.md``; the exit code is always 0 (a report; misses are marked).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import http.server
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MiB = 1 << 20
GiB = 1 << 30
CHUNK = 1 << 20
TOKEN = "bench-token-0123456789abcdef"  # noqa: S105 - a throwaway token for a loopback server
RESULTS = Path(__file__).resolve().parent / "results" / "http_latest.md"
_ENV_PREFIXES = ("FILETIER_", "SUPABASE_")
_ENV_NAMES = ("DATABASE_URL", "FILE_CACHE_DIR", "MAX_MEMORY_CACHE_SIZE", "MAX_CACHE_SIZE_MB")


@dataclasses.dataclass(frozen=True)
class Plan:
    big_size: int
    repeats: int
    small_files: int
    load_seconds: int
    connections: int


def make_plan(args: argparse.Namespace) -> Plan:
    big = int(args.size_gib * GiB) if args.size_gib else (128 * MiB if args.quick else GiB)
    return Plan(
        big_size=big,
        repeats=args.repeats or (2 if args.quick else 3),
        small_files=100 if args.quick else 300,
        load_seconds=5 if args.quick else 15,
        connections=64,
    )


# -- results --------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    metric: str
    filetier: str
    baseline: str
    ratio: str
    target: str
    verdict: str


ROWS: list[Row] = []
NOTES: list[str] = []


def add(metric: str, filetier: str, baseline: str, ratio: str, target: str, verdict: str) -> None:
    ROWS.append(Row(metric, filetier, baseline, ratio, target, verdict))
    print(f"  -> {metric}: {filetier} vs {baseline} ({ratio}; {target}) {verdict}", flush=True)


def check(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


def gbps(size: int, seconds: float) -> str:
    return f"{size / seconds / GiB:.2f} GiB/s"


# -- servers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_ENV_PREFIXES) and k not in _ENV_NAMES
    }


@dataclasses.dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self, probe: str, timeout: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(self.url + probe, timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(name: str, argv: list[str], work: Path, env: dict[str, str], probe: str) -> Server:
    port = free_port()
    log = work / f"{name.replace(' ', '_')}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*argv, str(port)], env=env, cwd=work, stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(name, process, port, log)
    server.wait(probe)
    return server


FILETIER_SERVE = (
    "import sys\n"
    "from filetier.config import Settings\n"
    "from filetier.interfaces.serve import run\n"
    "run(Settings(), '127.0.0.1', int(sys.argv[1]))\n"
)


def serve_bare(port: int, big: Path, small_dir: Path) -> None:
    """A bare Starlette app: FileResponse in 1 MiB chunks, under the same uvicorn."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, Response
    from starlette.routing import Route

    class BigChunks(FileResponse):
        chunk_size = CHUNK

    async def whole(request: Request) -> Response:
        return BigChunks(big)

    async def small(request: Request) -> Response:
        return BigChunks(small_dir / request.path_params["name"])

    app = Starlette(routes=[Route("/big", whole), Route("/small/{name}", small)])
    uvicorn.run(app, host="127.0.0.1", port=port, lifespan="off")


def serve_store_open(port: int, home: Path, big_id: str) -> None:
    """The alternative to filetier's fast path: ``FileStore.open()`` in a StreamingResponse."""
    import contextlib
    from collections.abc import AsyncIterator

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    from filetier import FileStore, Settings

    store = FileStore(Settings(_env_file=None, home=home, fsync=False))  # type: ignore[call-arg]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with store:
            yield

    async def whole(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            async with store.open(big_id, chunk_size=CHUNK) as reader:
                async for chunk in reader:
                    yield chunk

        record = await store.stat(big_id)
        return StreamingResponse(body(), headers={"content-length": str(record.size)})

    async def alive(request: Request) -> Response:
        return Response("ok")

    app = Starlette(routes=[Route("/big", whole), Route("/alive", alive)], lifespan=lifespan)
    uvicorn.run(app, host="127.0.0.1", port=port)


def serve_sendfile(port: int, big: Path, small_dir: Path) -> None:
    """``http.server`` answering with ``socket.sendfile`` (zero copy), keep-alive."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = big if self.path == "/big" else small_dir / self.path.rsplit("/", 1)[-1]
            with path.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                self.wfile.flush()
                self.connection.sendfile(handle)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    http.server.ThreadingHTTPServer.daemon_threads = True
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler) as httpd:
        httpd.serve_forever()


# -- measurements -----------------------------------------------------------------------------


def copies_counters(base: str, headers: dict[str, str]) -> tuple[int, int]:
    """(hashed, trusted) from the server's /metrics."""
    import httpx

    text = httpx.get(f"{base}/metrics", headers=headers, timeout=10).text
    # prometheus_client writes counters as floats ("3.0").
    found = dict(re.findall(r"^filetier_http_copies_(\w+)_total (\S+)$", text, re.M))
    return int(float(found["hashed"])), int(float(found["trusted"]))


def _mint_link(base: str, file_id: str, headers: dict[str, str]) -> str:
    import httpx

    response = httpx.post(
        f"{base}/v1/files/{file_id}/links", json={"expires_in": 3600}, headers=headers
    )
    response.raise_for_status()
    url: str = response.json()["url"]
    return url


def curl_seconds(url: str, headers: dict[str, str], expected: int) -> float:
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}"]
    for key, value in headers.items():
        argv += ["-H", f"{key}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout.split()
    code, size, seconds = int(out[0]), int(out[1]), float(out[2])
    if code not in (200, 206) or size != expected:
        raise RuntimeError(f"{url}: HTTP {code}, {size} bytes, expected {expected}")
    return seconds


def best_of(repeats: int, fn: Callable[[], float]) -> tuple[float, list[float]]:
    samples = [fn() for _ in range(repeats)]
    return min(samples), samples


@dataclasses.dataclass
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if match is None:
        raise ValueError(f"not a wrk latency: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk_load(base: str, paths: list[str], headers: dict[str, str], plan: Plan, work: Path) -> Load:
    script = work / f"mix-{random.getrandbits(32):x}.lua"
    quoted = ",".join(f'"{p}"' for p in paths)
    header_lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    script.write_text(
        f"{header_lines}\n"
        f"local paths = {{{quoted}}}\n"
        "local i = math.random(#paths)\n"
        "request = function()\n"
        "  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\n'
        "end\n"
    )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{plan.connections}",
            f"-d{plan.load_seconds}s",
            "--latency",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    distribution = out.split("Latency Distribution", 1)[1]
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", distribution, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", distribution, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*", out)
    if socket_errors:
        NOTES.append(f"wrk {base}: {socket_errors.group(0)}")
    return Load(rps, p50, p99, int(errors.group(1)) if errors else 0)


def httpx_load(base: str, paths: list[str], headers: dict[str, str], plan: Plan) -> Load:
    import httpx

    async def run() -> Load:
        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + plan.load_seconds
        limits = httpx.Limits(max_connections=plan.connections)
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:

            async def worker(offset: int) -> None:
                nonlocal errors
                i = offset
                while time.perf_counter() < deadline:
                    i = (i + 1) % len(paths)
                    started = time.perf_counter()
                    response = await client.get(paths[i])
                    latencies.append((time.perf_counter() - started) * 1000)
                    errors += response.status_code != 200

            begun = time.perf_counter()
            await asyncio.gather(*(worker(n * 7) for n in range(plan.connections)))
            elapsed = time.perf_counter() - begun
        cuts = statistics.quantiles(latencies, n=100)
        return Load(len(latencies) / elapsed, cuts[49], cuts[98], errors)

    return asyncio.run(run())


# -- the run ----------------------------------------------------------------------------------


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as out:
        left = size
        while left:
            n = min(left, 16 * MiB)
            out.write(os.urandom(n))
            left -= n


def populate(home: Path, big: Path, small_dir: Path) -> tuple[str, Path, dict[str, str]]:
    """Store the files with the library; return the big id, its object path, small ids."""
    from filetier import FileStore, Settings

    async def go() -> tuple[str, Path, dict[str, str]]:
        settings = Settings(_env_file=None, home=home, fsync=False)  # type: ignore[call-arg]
        async with FileStore(settings) as store:
            result = await store.upload_file(big, filename="big.bin")
            record = await store.stat(result.file_id)
            small_ids = {}
            for path in sorted(small_dir.iterdir()):
                small_ids[path.name] = str((await store.upload_file(path)).file_id)
            obj = store.primary.local_path(record.storage_key)  # type: ignore[attr-defined]
            return str(result.file_id), Path(obj), small_ids

    return asyncio.run(go())


def read_once(path: Path) -> None:
    with path.open("rb") as handle:
        while handle.read(16 * MiB):
            pass


def run(plan: Plan, work: Path) -> None:
    print(f"work dir {work}; big file {plan.big_size / MiB:.0f} MiB", flush=True)
    src = work / "big.src"
    write_random(src, plan.big_size)
    small_src = work / "small-src"
    small_src.mkdir()
    rng = random.Random(7)
    for n in range(plan.small_files):
        size = int(2 ** rng.uniform(9, 17))  # 512 B .. 128 KiB, log-uniform
        (small_src / f"s{n:04d}.bin").write_bytes(os.urandom(size))

    home = work / "home"
    big_id, big_obj, small_ids = populate(home, src, small_src)
    src.unlink()  # only the stored object remains: one copy in the page cache
    read_once(big_obj)
    read_once(big_obj)

    env = clean_env()
    ft_env = {**env, "FILETIER_HOME": str(home), "FILETIER_API_TOKENS": f"default:{TOKEN}"}
    me = [sys.executable, str(Path(__file__).resolve())]
    servers = {
        "filetier": start(
            "filetier", [sys.executable, "-c", FILETIER_SERVE], work, ft_env, "/healthz"
        ),
        "filetier, hash every time": start(
            "filetier (FILETIER_VERIFIED_COPY_SECONDS=0)",
            [sys.executable, "-c", FILETIER_SERVE],
            work,
            {**ft_env, "FILETIER_VERIFIED_COPY_SECONDS": "0"},
            "/healthz",
        ),
        "bare": start(
            "bare starlette",
            [*me, "--serve-bare", str(big_obj), str(small_src)],
            work,
            env,
            "/small/s0000.bin",
        ),
        "sendfile": start(
            "sendfile",
            [*me, "--serve-sendfile", str(big_obj), str(small_src)],
            work,
            env,
            "/small/s0000.bin",
        ),
        "store.open": start(
            "store.open", [*me, "--serve-store-open", str(home), big_id], work, env, "/alive"
        ),
    }
    try:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        urls = {
            "filetier": (f"{servers['filetier'].url}/v1/files/{big_id}/content", auth),
            "filetier, hash every time": (
                f"{servers['filetier, hash every time'].url}/v1/files/{big_id}/content",
                auth,
            ),
            # The same server and file through a download link: no token, same code path.
            "filetier link": (_mint_link(servers["filetier"].url, big_id, auth), {}),
            "bare": (f"{servers['bare'].url}/big", {}),
            "sendfile": (f"{servers['sendfile'].url}/big", {}),
            "store.open": (f"{servers['store.open'].url}/big", {}),
        }
        size = plan.big_size
        for url, headers in urls.values():  # warm every server once
            curl_seconds(url, headers, size)
        # Interleave the repetitions so that a noisy neighbour hits every server alike.
        samples: dict[str, list[float]] = {name: [] for name in urls}
        for _ in range(plan.repeats):
            for name, (url, headers) in urls.items():
                samples[name].append(curl_seconds(url, headers, size))
        best = {name: min(values) for name, values in samples.items()}
        for name, values in samples.items():
            NOTES.append(f"curl {name}: " + ", ".join(f"{v:.3f}s" for v in values))
        hashed, trusted = copies_counters(servers["filetier"].url, auth)
        NOTES.append(
            f"filetier (default window): {hashed} full SHA-256 pass(es), {trusted} download(s) "
            "of the unchanged copy served within FILETIER_VERIFIED_COPY_SECONDS"
        )
        ratio = best["bare"] / best["filetier"]
        add(
            f"download {size // MiB} MiB, curl, vs bare Starlette FileResponse (1 MiB chunks); "
            "copy hashed in full by an earlier download in the window (default 300 s)",
            gbps(size, best["filetier"]),
            gbps(size, best["bare"]),
            f"{ratio:.2f}x",
            ">= 0.8x",
            check(ratio >= 0.8),
        )
        ratio = best["filetier"] / best["filetier link"]
        add(
            f"download {size // MiB} MiB, curl, through a download link (GET /links/{{token}}, "
            "no token) vs the authenticated content route, same server",
            gbps(size, best["filetier link"]),
            gbps(size, best["filetier"]),
            f"{ratio:.2f}x",
            ">= 0.9x",
            check(ratio >= 0.9),
        )
        every = best["filetier, hash every time"]
        ratio = best["bare"] / every
        add(
            f"download {size // MiB} MiB, every download hashed while streaming "
            "(FILETIER_VERIFIED_COPY_SECONDS=0) vs bare Starlette",
            gbps(size, every),
            gbps(size, best["bare"]),
            f"{ratio:.2f}x",
            "info",
            "info",
        )
        ratio = best["sendfile"] / best["filetier"]
        add(
            f"download {size // MiB} MiB, curl, vs http.server + socket.sendfile",
            gbps(size, best["filetier"]),
            gbps(size, best["sendfile"]),
            f"{ratio:.2f}x",
            "info",
            "info",
        )

        hash_best, hash_samples = best_of(plan.repeats, lambda: _hash_seconds(big_obj))
        NOTES.append("sha256 in-process: " + ", ".join(f"{v:.3f}s" for v in hash_samples))
        add(
            f"download {size // MiB} MiB, every download hashed, vs SHA-256 alone over the "
            "file (hashlib, one core): the ceiling of any stream hashed as it goes",
            gbps(size, every),
            gbps(size, hash_best),
            f"{hash_best / every:.2f}x",
            "info",
            "info",
        )
        ratio = best["store.open"] / every
        add(
            f"download {size // MiB} MiB, every download hashed: fast path vs "
            "FileStore.open() in a StreamingResponse",
            gbps(size, every),
            gbps(size, best["store.open"]),
            f"{ratio:.2f}x",
            "info",
            "info",
        )

        half = size // 2
        ranged = {**auth, "Range": f"bytes={half}-", "If-Range": f'"{_sha_of(big_obj)}"'}
        curl_seconds(urls["filetier"][0], ranged, size - half)  # first range: hashes the copy
        rng_best, rng_samples = best_of(
            plan.repeats, lambda: curl_seconds(urls["filetier"][0], ranged, size - half)
        )
        NOTES.append("curl filetier range: " + ", ".join(f"{v:.3f}s" for v in rng_samples))
        bare_half = best["bare"] / 2
        add(
            "second half by Range + If-Range (copy already verified) vs half the bare whole",
            gbps(size - half, rng_best),
            gbps(size - half, bare_half),
            f"{bare_half / rng_best:.2f}x",
            "info",
            "info",
        )

        small_paths = {
            "filetier": [f"/v1/files/{fid}/content" for fid in small_ids.values()],
            "bare": [f"/small/{name}" for name in small_ids],
        }
        use_wrk = shutil.which("wrk") is not None
        loads: dict[str, Load] = {}
        for name in ("filetier", "bare"):
            headers = auth if name == "filetier" else {}
            base = servers[name].url
            _warm(base, small_paths[name], headers)  # every small file read once first
            if use_wrk:
                loads[name] = wrk_load(base, small_paths[name], headers, plan, work)
            else:
                loads[name] = httpx_load(base, small_paths[name], headers, plan)
        tool = "wrk" if use_wrk else "httpx asyncio"
        ft, bare = loads["filetier"], loads["bare"]
        for name, load in loads.items():
            if load.errors:
                NOTES.append(f"{name}: {load.errors} non-2xx answers under load")
        label = f"{plan.connections} clients, {plan.small_files} small files (0.5-128 KiB), {tool}"
        rps_ratio = ft.requests_per_second / bare.requests_per_second
        add(
            f"{label}: requests/s",
            f"{ft.requests_per_second:,.0f}",
            f"{bare.requests_per_second:,.0f}",
            f"{rps_ratio:.2f}x",
            ">= 0.8x",
            check(rps_ratio >= 0.8),
        )
        add(f"{label}: p50 latency", f"{ft.p50_ms:.2f} ms", f"{bare.p50_ms:.2f} ms",
            f"{bare.p50_ms / ft.p50_ms:.2f}x", "info", "info")  # fmt: skip
        add(f"{label}: p99 latency", f"{ft.p99_ms:.2f} ms", f"{bare.p99_ms:.2f} ms",
            f"{bare.p99_ms / ft.p99_ms:.2f}x", "info", "info")  # fmt: skip
    finally:
        for server in servers.values():
            server.stop()


def _warm(base: str, paths: list[str], headers: dict[str, str]) -> None:
    import httpx

    with httpx.Client(base_url=base, headers=headers) as client:
        for path in paths:
            response = client.get(path)
            response.raise_for_status()


def _hash_seconds(path: Path) -> float:
    import hashlib

    digest = hashlib.sha256()
    started = time.perf_counter()
    with path.open("rb", buffering=0) as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return time.perf_counter() - started


def _sha_of(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(16 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def report(plan: Plan, started: datetime, load_before: float) -> str:
    lines = [
        f"# filetier HTTP benchmark ({started:%Y-%m-%d %H:%M} UTC)",
        "",
        f"{platform.node()} · {platform.machine()} · {os.cpu_count()} CPUs · Python "
        f"{platform.python_version()} · load {load_before:.2f} -> {os.getloadavg()[0]:.2f} · "
        f"large file {plan.big_size // MiB} MiB, best of {plan.repeats}",
        "",
        "| metric | filetier | baseline | ratio | target | result |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.metric} | {r.filetier} | {r.baseline} | {r.ratio} | {r.target} | {r.verdict} |"
        for r in ROWS
    ]
    if NOTES:
        lines += ["", "Samples and notes:", ""] + [f"- {note}" for note in NOTES]
    failed = [r.metric for r in ROWS if "FAIL" in r.verdict or "ERROR" in r.verdict]
    if failed:
        lines += ["", "Missed: " + "; ".join(failed)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="128 MiB, 5 s load runs")
    parser.add_argument("--size-gib", type=float, default=None, help="large file size")
    parser.add_argument("--repeats", type=int, default=None, help="large-file repetitions")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--serve-bare", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--serve-sendfile", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--serve-store-open", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        big, small, port = args.serve_bare
        serve_bare(int(port), Path(big), Path(small))
        return
    if args.serve_store_open:
        home, big_id, port = args.serve_store_open
        serve_store_open(int(port), Path(home), big_id)
        return
    if args.serve_sendfile:
        big, small, port = args.serve_sendfile
        serve_sendfile(int(port), Path(big), Path(small))
        return
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES) or name in _ENV_NAMES:
            del os.environ[name]
    if shutil.which("curl") is None:
        sys.exit("curl is needed on PATH")
    plan = make_plan(args)
    started = datetime.now(UTC)
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="filetier-bench-http-", dir=args.dir))
    try:
        run(plan, work)
    except Exception:
        traceback.print_exc()
        ROWS.append(Row("run", "-", "-", "-", "-", "**ERROR** (traceback on stderr)"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = report(plan, started, load_before)
    print()
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table)
    sys.stdout.flush()
    os._exit(0)  # obstore may abort the interpreter at shutdown (see bench/README.md)


if __name__ == "__main__":
    main()
