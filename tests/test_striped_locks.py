"""The embedded content locks are a fixed set of striped lock files.

However many contents are stored, the lock directory holds at most 1,024 + 256 files; two
keys on one stripe exclude each other across processes and tasks, and a task never
deadlocks itself on them.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import time
from pathlib import Path

from filetier import FileStore, Settings
from filetier.content_locks import (
    CONTENT_STRIPES,
    NAMED_STRIPES,
    FileContentLocks,
    stripe_name,
)
from tests.support.procs import Child

STRIPE_FILE = re.compile(r"^(content-\d{4}|named-\d{3})\.lock$")


def _same_stripe_as(key: str) -> str:
    while True:
        other = secrets.token_hex(32)
        if other != key and stripe_name(other) == stripe_name(key):
            return other


async def test_the_lock_directory_never_holds_more_than_the_stripes(tmp_path: Path) -> None:
    locks = FileContentLocks(tmp_path / "locks", 5.0)
    for _ in range(4 * CONTENT_STRIPES):
        async with locks.hold(secrets.token_hex(32)) as got:
            assert got is True
    for i in range(4 * NAMED_STRIPES):
        async with locks.hold(f"provider:kimi:acct:purpose:owner:{i}") as got:
            assert got is True
    names = os.listdir(tmp_path / "locks")
    assert len(names) <= CONTENT_STRIPES + NAMED_STRIPES
    assert all(STRIPE_FILE.match(name) for name in names), names[:5]


async def test_uploads_of_new_content_leave_only_stripe_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    async with FileStore(Settings(home=home, fsync=False)) as store:  # type: ignore[call-arg]
        await asyncio.gather(
            *(store.upload_file(os.urandom(512), filename=f"s{i}.bin") for i in range(300))
        )
        lock_dir = store.core.disk.locks
    names = os.listdir(lock_dir)
    assert names and all(STRIPE_FILE.match(name) for name in names), names[:5]
    assert len(names) <= 300


async def test_one_task_takes_two_keys_of_one_stripe_without_waiting(tmp_path: Path) -> None:
    locks = FileContentLocks(tmp_path / "locks", 5.0)
    first = secrets.token_hex(32)
    second = _same_stripe_as(first)
    started = time.monotonic()
    async with locks.hold(first) as a, locks.hold(second) as b, locks.hold(first) as again:
        assert (a, b, again) == (True, True, True)
    assert time.monotonic() - started < 1.0
    # Let go completely: another task takes it at once.
    async with locks.hold(second) as after:
        assert after is True


async def test_tasks_on_one_stripe_take_turns(tmp_path: Path) -> None:
    locks = FileContentLocks(tmp_path / "locks", 10.0)
    first = secrets.token_hex(32)
    second = _same_stripe_as(first)
    inside: list[str] = []
    overlaps = 0

    async def use(key: str, tag: str) -> None:
        nonlocal overlaps
        async with locks.hold(key) as got:
            assert got is True
            overlaps += bool(inside)
            inside.append(tag)
            await asyncio.sleep(0.02)
            inside.remove(tag)

    await asyncio.gather(*(use(first if i % 2 else second, str(i)) for i in range(10)))
    assert overlaps == 0


async def test_a_process_holding_a_stripe_excludes_another_key_on_it(tmp_path: Path) -> None:
    directory = tmp_path / "locks"
    directory.mkdir()
    key = "ab" * 32
    other = _same_stripe_as(key)
    go = tmp_path / "go"
    with Child(
        "hold_lock", "file", directory, key, go, env=dict(os.environ), cwd=tmp_path
    ) as child:
        assert child.expect("held")["got"] is True
        async with FileContentLocks(directory, 0.3).hold(other) as got:
            assert got is False
        async with FileContentLocks(directory, 0.3).hold(_different_stripe(key)) as got:
            assert got is True
        go.touch()
        child.expect("released")
    async with FileContentLocks(directory, 10.0).hold(other) as got:
        assert got is True


def _different_stripe(key: str) -> str:
    while True:
        other = secrets.token_hex(32)
        if stripe_name(other) != stripe_name(key):
            return other
