"""HTTP load against a real ``filetier serve`` process; every byte read back is checked.

    python -m reliability.load --seconds 300 --clients 64 [--max-size B] [--seed N] [--json-out F]

A ``filetier serve`` process is started on a free port (embedded default: SQLite and the
local primary in its own temporary ``FILETIER_HOME``, ``MAX_CACHE_SIZE_MB`` small). N
asyncio clients, each with its own ``httpx.AsyncClient`` and its own files, run a random
mix for the given duration:

- uploads, 1 KiB to ``--max-size`` (64 MiB), mostly small (log-uniform, nine in ten under
  1 MiB), random bytes from a seeded generator, streamed when large; the returned SHA-256
  and size must match what was sent;
- full downloads: the SHA-256 of every byte received must match the upload's;
- ranged reads (``Range: bytes=a-b``) of files up to 8 MiB, whose bytes the client keeps:
  206 and exactly the slice;
- deletes (204), after which the content must be 404.

Any other status, any 5xx, a transport error or a wrong byte is an unexpected error. Once
a second the server's RSS (``VmRSS``) and open file descriptors are sampled; after the
warm-up (the first 20% of the run) RSS must stay within the warm-up's peak + 200 MiB and
the descriptor count within a band of 64, and the disk cache directory within its cap.

In the middle of the run a slow-loris check opens 20 raw sockets: half send an upload's
headers and then trickle its body one byte per second, half trickle the headers
themselves. Meanwhile ``GET /healthz`` from a fresh connection, made by a process of its
own, must answer within 1 s every time, and the server (run with a ``SLOW_HEAD_TIMEOUT``-second head timeout and its
default 1 KiB/s body floor) must close every slow connection before the check ends: the
head tricklers with ``408 Request Timeout``, the body tricklers without an answer.

The summary is printed as JSON; the exit status is 1 on any unexpected error, a failed
flatness check or a failed slow-loris check.
"""

# ruff: noqa: S311 - the workload is random by design, not secrets

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

KiB = 1024
MiB = 1024 * 1024
RANGE_MAX_SIZE = 8 * MiB  # bigger files are verified whole, never ranged
LIVE_PER_CLIENT = 12  # past this a client deletes before it uploads again
CHUNK = 1 * MiB
CACHE_CAP_MB = 64
# The server's head timeout (also its body-rate grace) during a load run: short enough for
# the 20 s CI run's slow-loris window to see every slow connection closed.
SLOW_HEAD_TIMEOUT = 2
WARMUP_FRACTION = 0.2
RSS_GROWTH_MAX = 200 * MiB
FD_BAND_MAX = 64
SLOW_SOCKETS = 20
# The /healthz prober: stdlib only, its own process; prints the latencies (null = failed).
PROBE_SCRIPT = """
import http.client, json, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
until, times = time.monotonic() + seconds, []
while time.monotonic() < until:
    began = time.monotonic()
    try:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
        times.append(time.monotonic() - began if ok else None)
    except OSError:
        times.append(None)
    time.sleep(0.5)
print(json.dumps(times))
"""
HEALTHZ_MAX_SECONDS = 1.0
ERROR_SAMPLES = 20
CLI = [sys.executable, "-c", "from filetier.interfaces.cli.app import main; main()"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_uniform(rng: random.Random, low: int, high: int) -> int:
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def _size(rng: random.Random, max_size: int) -> int:
    if rng.random() < 0.9 or max_size <= MiB:
        return _log_uniform(rng, KiB, min(MiB, max_size))
    return _log_uniform(rng, MiB, max_size)


def _chunks_of(seed: int, size: int) -> AsyncIterator[bytes]:
    """A file's bytes, regenerated from its seed one chunk at a time."""

    async def gen() -> AsyncIterator[bytes]:
        rng = random.Random(seed)
        left = size
        while left:
            n = min(CHUNK, left)
            yield rng.randbytes(n)
            left -= n
            await asyncio.sleep(0)

    return gen()


def _digest_of(seed: int, size: int) -> str:
    rng = random.Random(seed)
    digest = hashlib.sha256()
    left = size
    while left:
        n = min(CHUNK, left)
        digest.update(rng.randbytes(n))
        left -= n
    return digest.hexdigest()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return round(ordered[index] * 1000, 2)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (``/proc/PID/stat``), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / tick, sum(values) / tick


def _dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).lstat().st_size
    return total


@dataclass
class Live:
    file_id: str
    sha256: str
    size: int
    data: bytes | None  # kept for files up to RANGE_MAX_SIZE


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    bytes_uploaded: int = 0
    bytes_downloaded: int = 0
    bytes_verified: int = 0
    largest_upload: int = 0

    def record(self, op: str, seconds: float) -> None:
        self.requests[op] += 1
        self.latencies.setdefault(op, []).append(seconds)

    def error(self, op: str, detail: str) -> None:
        self.errors[op] += 1
        if len(self.error_samples) < ERROR_SAMPLES:
            self.error_samples.append(f"{op}: {detail[:300]}")


@dataclass
class Sample:
    t: float
    rss: int
    fds: int
    cache_bytes: int


class Server:
    """One ``filetier serve`` process in its own home; stopped with SIGINT."""

    def __init__(self, home: Path, token: str, **extra_env: str) -> None:
        self.home = home
        self.extra_env = extra_env
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.log_path = home.parent / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FILETIER_", "SUPABASE_"))}
        env.pop("DATABASE_URL", None)
        env.update(
            FILETIER_HOME=str(self.home),
            FILETIER_FSYNC="0",
            FILETIER_API_TOKENS=f"alice:{self.token}",
            MAX_CACHE_SIZE_MB=str(CACHE_CAP_MB),
            FILETIER_HTTP_HEAD_TIMEOUT_SECONDS=str(SLOW_HEAD_TIMEOUT),
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*CLI, "serve", "--port", str(self.port)],
                env=self.env(),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start: {self.log_tail()}")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class LoadRun:
    def __init__(
        self, server: Server, seconds: float, clients: int, max_size: int, seed: int
    ) -> None:
        self.server = server
        self.seconds = seconds
        self.clients = clients
        self.max_size = max_size
        self.seed = seed
        self.stats = Stats()
        self.samples: list[Sample] = []
        self.start = 0.0
        self.deadline = 0.0
        self.slow: dict[str, Any] = {}
        self.slow_seconds = 0.0
        self.headers = {"Authorization": f"Bearer {server.token}"}
        self.loop_lag: list[float] = []  # this process's own event loop, measured

    # -- the clients -----------------------------------------------------------------------

    async def _request(
        self, op: str, expected: int, call: Any, check: Any = None
    ) -> httpx.Response | None:
        began = time.monotonic()
        try:
            response: httpx.Response = await call()
        except httpx.HTTPError as exc:
            self.stats.record(op, time.monotonic() - began)
            self.stats.error(op, f"{type(exc).__name__}: {exc}")
            return None
        self.stats.record(op, time.monotonic() - began)
        if response.status_code != expected:
            body = response.text if not response.is_stream_consumed else ""
            self.stats.error(op, f"status {response.status_code}, expected {expected}: {body}")
            return None
        return response

    async def _upload(
        self, client: httpx.AsyncClient, rng: random.Random, live: list[Live]
    ) -> None:
        size = _size(rng, self.max_size)
        seed = rng.getrandbits(64)
        data: bytes | None = None
        if size <= RANGE_MAX_SIZE:
            data = random.Random(seed).randbytes(size)
            sha = hashlib.sha256(data).hexdigest()
            content: bytes | AsyncIterator[bytes] = data
        else:
            sha = await asyncio.to_thread(_digest_of, seed, size)
            content = _chunks_of(seed, size)
        response = await self._request(
            "upload",
            201,
            lambda: client.post(
                "/v1/files",
                params={"filename": f"load-{seed:x}.bin"},
                content=content,
                headers={"Content-Type": "application/octet-stream"},
            ),
        )
        if response is None:
            return
        body = response.json()
        if body.get("sha256") != sha or body.get("size") != size:
            self.stats.error("upload", f"answered {body}, sent sha256 {sha} size {size}")
            return
        self.stats.bytes_uploaded += size
        self.stats.largest_upload = max(self.stats.largest_upload, size)
        live.append(Live(body["file_id"], sha, size, data))

    async def _download(self, client: httpx.AsyncClient, item: Live) -> None:
        digest = hashlib.sha256()
        received = 0

        async def call() -> httpx.Response:
            nonlocal received
            async with client.stream("GET", f"/v1/files/{item.file_id}/content") as response:
                if response.status_code == 200:
                    async for chunk in response.aiter_bytes():
                        digest.update(chunk)
                        received += len(chunk)
                else:
                    await response.aread()
                return response

        response = await self._request("download", 200, call)
        if response is None:
            return
        self.stats.bytes_downloaded += received
        if received != item.size or digest.hexdigest() != item.sha256:
            self.stats.error(
                "download", f"{item.file_id}: {received} bytes, sha256 {digest.hexdigest()}"
            )
            return
        self.stats.bytes_verified += received

    async def _ranged(self, client: httpx.AsyncClient, rng: random.Random, item: Live) -> None:
        assert item.data is not None
        first = rng.randrange(item.size)
        last = min(item.size - 1, first + _log_uniform(rng, 1, max(2, item.size - first)))
        response = await self._request(
            "range",
            206,
            lambda: client.get(
                f"/v1/files/{item.file_id}/content",
                headers={"Range": f"bytes={first}-{last}"},
            ),
        )
        if response is None:
            return
        self.stats.bytes_downloaded += len(response.content)
        expected = item.data[first : last + 1]
        if response.content != expected:
            self.stats.error(
                "range",
                f"{item.file_id} bytes={first}-{last}: got {len(response.content)} bytes "
                f"(want {len(expected)}), content-range {response.headers.get('content-range')}",
            )
            return
        self.stats.bytes_verified += len(expected)

    async def _delete(self, client: httpx.AsyncClient, item: Live) -> None:
        response = await self._request(
            "delete", 204, lambda: client.delete(f"/v1/files/{item.file_id}")
        )
        if response is None:
            return
        await self._request(
            "get_deleted", 404, lambda: client.get(f"/v1/files/{item.file_id}/content")
        )

    async def _client(self, index: int) -> None:
        rng = random.Random(self.seed * 1_000_003 + index)
        live: list[Live] = []
        async with httpx.AsyncClient(
            base_url=self.server.base,
            headers=self.headers,
            timeout=httpx.Timeout(300.0, connect=30.0),
        ) as client:
            while time.monotonic() < self.deadline:
                roll = rng.random()
                if not live or (roll < 0.3 and len(live) < LIVE_PER_CLIENT):
                    await self._upload(client, rng, live)
                elif roll < 0.6:
                    await self._download(client, rng.choice(live))
                elif roll < 0.85:
                    small = [item for item in live if item.data is not None]
                    if small:
                        await self._ranged(client, rng, rng.choice(small))
                    else:
                        await self._download(client, rng.choice(live))
                else:
                    await self._delete(client, live.pop(rng.randrange(len(live))))

    # -- sampling --------------------------------------------------------------------------

    async def _lag_probe(self) -> None:
        """How late this process's own event loop runs a 10 ms timer: every latency the
        clients measure includes a few of these turns (the generator shares the cores)."""
        while time.monotonic() < self.deadline:
            began = time.monotonic()
            await asyncio.sleep(0.01)
            self.loop_lag.append(time.monotonic() - began - 0.01)

    def _sample(self) -> Sample | None:
        pid = self.server.pid
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            fds = sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            return None
        rss = 0
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * KiB
        cache = self.server.home / "cache"
        return Sample(time.monotonic() - self.start, rss, fds, _dir_bytes(cache))

    async def _sampler(self) -> None:
        while time.monotonic() < self.deadline:
            sample = await asyncio.to_thread(self._sample)
            if sample is not None:
                self.samples.append(sample)
            await asyncio.sleep(1.0)

    def _flatness(self) -> dict[str, Any]:
        warm_until = self.seconds * WARMUP_FRACTION
        warm = [s for s in self.samples if s.t <= warm_until]
        after = [s for s in self.samples if s.t > warm_until]
        if not warm or not after:
            return {"ok": False, "detail": "too few samples", "samples": len(self.samples)}
        warm_rss = max(s.rss for s in warm)
        rss_max = max(s.rss for s in after)
        fds = [s.fds for s in after]
        cache_cap = CACHE_CAP_MB * 1_000_000
        cache_max = max(s.cache_bytes for s in self.samples)
        rss_ok = rss_max <= warm_rss + RSS_GROWTH_MAX
        fds_ok = max(fds) - min(fds) <= FD_BAND_MAX
        cache_ok = cache_max <= cache_cap
        return {
            "ok": rss_ok and fds_ok and cache_ok,
            "samples": len(self.samples),
            "warmup_seconds": round(warm_until, 1),
            "rss_mib": {
                "start": round(self.samples[0].rss / MiB, 1),
                "warmup_peak": round(warm_rss / MiB, 1),
                "after_warmup_min": round(min(s.rss for s in after) / MiB, 1),
                "after_warmup_max": round(rss_max / MiB, 1),
                "end": round(self.samples[-1].rss / MiB, 1),
                "bound": round((warm_rss + RSS_GROWTH_MAX) / MiB, 1),
                "ok": rss_ok,
            },
            "fds": {
                "start": self.samples[0].fds,
                "after_warmup_min": min(fds),
                "after_warmup_max": max(fds),
                "end": self.samples[-1].fds,
                "band_bound": FD_BAND_MAX,
                "ok": fds_ok,
            },
            "disk_cache": {
                "max_bytes": cache_max,
                "cap_bytes": cache_cap,
                "ok": cache_ok,
                "note": (
                    "embedded default: reads come from the local primary, the disk cache "
                    "tier stayed empty"
                    if cache_max == 0
                    else "disk cache in use"
                ),
            },
        }

    # -- slow loris ------------------------------------------------------------------------

    async def _slow_socket(self, index: int, until: float) -> dict[str, Any]:
        """One slow connection; returns how it ended."""
        body_mode = index % 2 == 0
        head = (
            f"POST /v1/files?filename=slow-{index}.bin HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.server.port}\r\n"
            f"Authorization: Bearer {self.server.token}\r\n"
            "Content-Type: application/octet-stream\r\n"
            "Content-Length: 100000\r\n\r\n"
        ).encode()
        outcome: dict[str, Any] = {"mode": "body" if body_mode else "headers", "sent": 0}
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        except OSError as exc:
            return {**outcome, "end": f"connect failed: {exc}"}
        try:
            if body_mode:
                writer.write(head)
                await writer.drain()
                pending = b"x" * 100_000
            else:
                pending = head
            while time.monotonic() < until:
                writer.write(pending[outcome["sent"] : outcome["sent"] + 1])
                await writer.drain()
                outcome["sent"] += 1
                try:
                    data = await asyncio.wait_for(reader.read(4096), timeout=1.0)
                except TimeoutError:
                    continue
                if not data:
                    outcome["end"] = "closed by server"
                    outcome["after_s"] = round(time.monotonic() - (until - self.slow_seconds), 1)
                    return outcome
                outcome["end"] = "answered: " + data.split(b"\r\n", 1)[0].decode(errors="replace")
                outcome["after_s"] = round(time.monotonic() - (until - self.slow_seconds), 1)
                return outcome
            outcome["end"] = "still open"
            return outcome
        except OSError as exc:
            outcome["end"] = f"closed by server ({type(exc).__name__})"
            outcome["after_s"] = round(time.monotonic() - (until - self.slow_seconds), 1)
            return outcome
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _healthz_probes(self, until: float) -> list[float]:
        """``GET /healthz`` on a fresh connection every 0.5 s until ``until``, from a
        process of its own: timed in this one, the probes would also measure the load
        generator's own busy event loop (it makes and hashes every byte it sends)."""
        seconds = max(0.0, until - time.monotonic())
        probe = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            PROBE_SCRIPT,
            "127.0.0.1",
            str(self.server.port),
            f"{seconds:.3f}",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await probe.communicate()
        return [math.inf if t is None else t for t in json.loads(out or b"[]")]

    async def _slow_loris(self, start_after: float, seconds: float) -> None:
        await asyncio.sleep(start_after)
        self.slow_seconds = seconds
        until = time.monotonic() + seconds
        sockets = [self._slow_socket(i, until) for i in range(SLOW_SOCKETS)]
        probes, *ends = await asyncio.gather(self._healthz_probes(until), *sockets)
        finite = [t for t in probes if math.isfinite(t)]
        closed = [
            e for e in ends if e["end"].startswith(("closed by server", "answered: HTTP/1.1 408"))
        ]
        ok = (
            bool(probes)
            and len(finite) == len(probes)
            and max(finite) < HEALTHZ_MAX_SECONDS
            and len(closed) == len(ends)
        )
        self.slow = {
            "ok": ok,
            "sockets": SLOW_SOCKETS,
            "seconds": round(seconds, 1),
            "healthz_probes": len(probes),
            "healthz_failed": len(probes) - len(finite),
            "healthz_max_ms": round(max(finite) * 1000, 1) if finite else None,
            "healthz_p50_ms": _percentile(finite, 0.5),
            "closed_by_server": len(closed),
            "closed_after_max_s": max((e.get("after_s", 0.0) for e in closed), default=None),
            "outcomes": dict(Counter(f"{e['mode']}: {e['end']}" for e in ends)),
        }

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> None:
        self.start = time.monotonic()
        self.deadline = self.start + self.seconds
        slow_seconds = min(30.0, self.seconds * 0.4)
        await asyncio.gather(
            self._sampler(),
            self._lag_probe(),
            self._slow_loris(self.seconds * 0.3, slow_seconds),
            *(self._client(i) for i in range(self.clients)),
        )

    def summary(self, wall: float) -> dict[str, Any]:
        everything = [t for values in self.stats.latencies.values() for t in values]
        per_op = {
            op: {
                "n": len(values),
                "p50_ms": _percentile(values, 0.5),
                "p95_ms": _percentile(values, 0.95),
                "p99_ms": _percentile(values, 0.99),
            }
            for op, values in sorted(self.stats.latencies.items())
        }
        flat = self._flatness()
        errors = sum(self.stats.errors.values())
        return {
            "ok": errors == 0 and flat["ok"] and bool(self.slow.get("ok")),
            "seconds": round(wall, 1),
            "clients": self.clients,
            "max_size": self.max_size,
            "seed": self.seed,
            "requests": sum(self.stats.requests.values()),
            "requests_by_op": dict(self.stats.requests),
            "requests_per_second": round(sum(self.stats.requests.values()) / wall, 1),
            "per_second_by_op": {
                op: round(n / wall, 1) for op, n in sorted(self.stats.requests.items())
            },
            "unexpected_errors": errors,
            "errors_by_op": dict(self.stats.errors),
            "error_samples": self.stats.error_samples,
            "latency_ms": {
                "p50": _percentile(everything, 0.5),
                "p95": _percentile(everything, 0.95),
                "p99": _percentile(everything, 0.99),
                "by_op": per_op,
            },
            "load_generator_loop_lag_ms": {
                "p50": _percentile(self.loop_lag, 0.5),
                "p95": _percentile(self.loop_lag, 0.95),
            },
            "bytes_uploaded": self.stats.bytes_uploaded,
            "largest_upload": self.stats.largest_upload,
            "bytes_downloaded": self.stats.bytes_downloaded,
            "bytes_verified": self.stats.bytes_verified,
            "flatness": flat,
            "slow_loris": self.slow,
        }


def run_load(
    seconds: float,
    clients: int,
    *,
    max_size: int = 64 * MiB,
    seed: int | None = None,
    root: Path | None = None,
) -> dict[str, Any]:
    """Start a server, load it for ``seconds``, stop it; the summary."""
    seed = random.randrange(2**31) if seed is None else seed
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="filetier-load-")))
        root.mkdir(parents=True, exist_ok=True)
        server = Server(root / "home", secrets.token_urlsafe(24))
        server.start()
        began = time.monotonic()
        server_cpu0 = _cpu_seconds(server.pid)
        client_cpu0 = time.process_time()
        machine0 = _machine_busy()
        load = LoadRun(server, seconds, clients, max_size, seed)
        try:
            asyncio.run(load.run())
        finally:
            wall = time.monotonic() - began
            server_cpu1 = _cpu_seconds(server.pid)
            client_cpu = time.process_time() - client_cpu0
            machine1 = _machine_busy()
            code = server.stop()
        summary = load.summary(wall)
        summary["cpu_seconds"] = {
            "server": (
                round(server_cpu1 - server_cpu0, 1)
                if server_cpu0 is not None and server_cpu1 is not None
                else None
            ),
            "load_generator": round(client_cpu, 1),
            "machine_busy": round(machine1[0] - machine0[0], 1),
            "machine_total": round(machine1[1] - machine0[1], 1),
        }
        summary["server_exit_code"] = code
        if code != 0:
            summary["ok"] = False
            summary["server_log_tail"] = server.log_tail()
        return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reliability.load", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--max-size", type=int, default=64 * MiB, help="largest upload, bytes")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--json-out", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    summary = run_load(args.seconds, args.clients, max_size=args.max_size, seed=args.seed)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
