"""Child processes for the concurrency and crash tests, and the parent's side of them.

Each ``<name>.py`` here is a script a test starts as ``sys.executable tests/support/procs/<name>.py``
with the store configured through environment variables only. A child prints one JSON
object per line on stdout; :class:`Child` reads them with a timeout, so a child that hangs
fails the test instead of stalling it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from filetier import FileRecord, FileStore, Settings

PROCS = Path(__file__).resolve().parent


class ChildFailed(AssertionError):
    """A child ended, or stayed silent, when the test expected a message."""


@dataclass(frozen=True)
class StoreLayout:
    """Where one test's store lives, as Settings (parent) and environment (children)."""

    root: Path
    remote: bool = False

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def primary_dir(self) -> Path:
        return self.root / "remote"

    @property
    def out(self) -> Path:
        """The allowed download root (children write their copies here)."""
        return self.root / "out"

    @property
    def objects(self) -> Path:
        """The primary's object tree: ``objects/sha256`` locally, ``remote/sha256`` else."""
        return (self.primary_dir if self.remote else self.home / "objects") / "sha256"

    @property
    def staging(self) -> Path:
        """Where uploads stage their temp files: the local primary's, else the cache's."""
        return self.cache / "tmp" if self.remote else self.home / "objects" / ".staging"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            FILETIER_HOME=str(self.home),
            FILE_CACHE_DIR=str(self.cache),
            FILETIER_ALLOWED_ROOTS=str(self.out),
            FILETIER_FSYNC="0",
            FILETIER_BOOKKEEPING_FLUSH_SECONDS="0.05",
            PYTHONDONTWRITEBYTECODE="1",
        )
        if self.remote:
            env["FILETIER_PRIMARY_URL"] = f"file://{self.primary_dir}"
        env.update(extra)
        return env

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": self.home,
            "cache_dir": self.cache,
            "allowed_roots": str(self.out),
            "fsync": False,
            "bookkeeping_flush_seconds": 0.05,
        }
        if self.remote:
            values["primary_url"] = f"file://{self.primary_dir}"
        values.update(overrides)
        return Settings(**values)

    def make_dirs(self) -> Self:
        for directory in (self.home, self.cache, self.out):
            directory.mkdir(parents=True, exist_ok=True)
        return self


class Child:
    """One running child script. Use as a context manager: it is always reaped."""

    def __init__(self, script: str, *args: str | Path, env: dict[str, str], cwd: Path) -> None:
        self.script = script
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, str(PROCS / f"{script}.py"), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=cwd,
        )
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def _describe(self) -> str:
        return f"{self.script} (pid {self.pid}, exit {self.proc.poll()}); stderr:\n{self.stderr()[-4000:]}"

    def message(self, timeout: float = 60.0) -> dict[str, Any]:
        """The next JSON line the child printed."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChildFailed(f"no message within {timeout}s from {self._describe()}")
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if ready:
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    self.proc.wait(timeout=10)
                    raise ChildFailed(f"child ended before its next message: {self._describe()}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            decoded: dict[str, Any] = json.loads(line)
        except ValueError:
            raise ChildFailed(f"not JSON: {line!r} from {self._describe()}") from None
        return decoded

    def expect(self, event: str, timeout: float = 60.0) -> dict[str, Any]:
        """Skip to the next message whose ``event`` is ``event``."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.message(max(0.0, deadline - time.monotonic()))
            if found.get("event") == event:
                return found

    def messages(self) -> list[dict[str, Any]]:
        """Every remaining message, after the child has exited."""
        found = []
        while True:
            try:
                found.append(self.message(timeout=10))
            except ChildFailed:
                return found

    def finish(self, timeout: float = 60.0) -> int:
        """Wait for a normal exit; returns the exit status."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ChildFailed(f"still running after {timeout}s: {self._describe()}") from None

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` (SIGKILL by default) and reap; returns the exit status."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
        return self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()


async def all_records(store: FileStore, **filters: str) -> list[FileRecord]:
    """Every file row the store lists (with ``list``'s filters), page by page."""
    records: list[FileRecord] = []
    offset: int | None = 0
    while offset is not None:
        page = await store.list(limit=1000, offset=offset, **filters)
        records.extend(page.items)
        offset = page.next_offset
    return records


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def is_object_name(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def unsound_objects(objects: Path, *, named_only: bool = False) -> list[str]:
    """Files under ``objects`` (a ``sha256/`` tree) that are not a complete object at its
    place: bytes that do not hash to the name, or (unless ``named_only``) any other file,
    such as a store's partial upload left beside the objects."""
    bad: list[str] = []
    if not objects.exists():
        return bad
    for path in objects.rglob("*"):
        if not path.is_file():
            continue
        name = path.name
        if named_only and not is_object_name(name):
            continue
        rel = path.relative_to(objects).parts
        if rel != (name[:2], name[2:4], name) or sha256_file(path) != name:
            bad.append(str(path.relative_to(objects)))
    return bad


def object_names(objects: Path) -> list[str]:
    """The names of the objects in a ``sha256/`` tree (files named by a SHA-256)."""
    if not objects.exists():
        return []
    return sorted(p.name for p in objects.rglob("*") if p.is_file() and is_object_name(p.name))


def write_random_file(path: Path, size: int, *, block: int = 1024 * 1024) -> str:
    """``size`` bytes of fresh content (a random block varied per position); its SHA-256."""
    seed = os.urandom(block)
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        index = 0
        written = 0
        while written < size:
            chunk = (index.to_bytes(8, "big") + seed[8:])[: size - written]
            handle.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            index += 1
    return digest.hexdigest()
