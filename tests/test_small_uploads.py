"""Many small uploads at once: group commit, the sniffing fast path, durability settings.

The rows of uploads that arrive together commit in one transaction; each upload still
gets its own outcome (a quota refusal is that upload's alone), and with fsync on every
commit is synced.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sqlite3
from pathlib import Path

import pytest
from puremagic import main as puremagic_main

from filetier import FileStore, QuotaExceededError, Settings, digest
from filetier.digest import SNIFF_BYTES, sniff_mime


def settings_for(home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"home": home, "fsync": False, "bookkeeping_flush_seconds": 0.05}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def test_concurrent_uploads_each_get_their_own_row_and_bytes(tmp_path: Path) -> None:
    contents = [os.urandom(4096) for _ in range(48)] + [b"same bytes"] * 16
    async with FileStore(settings_for(tmp_path / "home")) as store:
        results = await asyncio.gather(
            *(store.upload_file(data, filename=f"f{i}.bin") for i, data in enumerate(contents))
        )
        assert len({r.file_id for r in results}) == len(contents)
        for result, data in zip(results, contents, strict=True):
            assert result.sha256 == hashlib.sha256(data).hexdigest()
            assert await store.read_bytes(result.file_id) == data
        listed = await store.list(limit=1000)
        assert listed.total == len(contents)
        assert sum(not r.deduplicated for r in results if r.size == len(b"same bytes")) == 1


async def test_quota_refuses_only_the_uploads_past_it_within_one_batch(tmp_path: Path) -> None:
    async with FileStore(settings_for(tmp_path / "home", owner_quota_files=5)) as store:
        outcomes = await asyncio.gather(
            *(store.upload_file(os.urandom(1024), filename=f"q{i}.bin") for i in range(24)),
            return_exceptions=True,
        )
        stored = [o for o in outcomes if not isinstance(o, BaseException)]
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(stored) == 5
        assert all(isinstance(o, QuotaExceededError) for o in refused)
        assert (await store.list(limit=100)).total == 5
        for result in stored:
            assert len(await store.read_bytes(result.file_id)) == 1024
        # The refused uploads left no object behind either.
        objects = [p for p in (tmp_path / "home" / "objects" / "sha256").rglob("*") if p.is_file()]
        assert len(objects) == 5


@pytest.mark.parametrize(("fsync", "level"), [(True, 2), (False, 1)])
async def test_sqlite_commits_are_synced_when_fsync_is_on(
    tmp_path: Path, fsync: bool, level: int
) -> None:
    """In WAL mode, synchronous=NORMAL does not sync at commit: an acknowledged upload
    could be lost to a power cut. With fsync on, every commit syncs (FULL = 2)."""
    async with FileStore(settings_for(tmp_path / "home", fsync=fsync)) as store:
        await store.upload_file(b"x" * 100, filename="a.txt")
        async with store.db.read() as conn:
            found = await conn.exec_driver_sql("PRAGMA synchronous")
            assert found.scalar_one() == level
        # The batches of uploads' rows commit on their own engine: the same settings.
        assert store.db.batch_engine is not None
        with store.db.batch_engine.connect() as sync_conn:
            assert sync_conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == level
            assert sync_conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert sync_conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30000


async def test_fsync_on_uploads_are_stored_and_readable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    contents = [os.urandom(2048) for _ in range(20)]
    async with FileStore(settings_for(home, fsync=True)) as store:
        results = await asyncio.gather(*(store.upload_file(d, filename="s.bin") for d in contents))
    with sqlite3.connect(home / "filetier.db") as db:
        (rows,) = db.execute("SELECT count(*) FROM file_metadata").fetchone()
    assert rows == len(contents)
    async with FileStore(settings_for(home, fsync=True)) as store:
        for result, data in zip(results, contents, strict=True):
            assert await store.read_bytes(result.file_id) == data


def _full_sniff(head: bytes, filename: str) -> str:
    """sniff_mime as it was: puremagic asked every time."""
    original = digest._may_have_magic
    digest._may_have_magic = lambda _data: True
    try:
        return sniff_mime(head, filename)
    finally:
        digest._may_have_magic = original


def test_sniffing_fast_path_types_everything_as_puremagic_does() -> None:
    rng = random.Random(12)
    samples: list[tuple[bytes, str]] = []
    for row in puremagic_main.magic_header_array:
        if row.offset + len(row.byte_match) <= SNIFF_BYTES:
            padding = bytes(rng.randrange(256) for _ in range(64))
            samples.append((b"\0" * row.offset + row.byte_match + padding, "x.bin"))
    for row in puremagic_main.magic_footer_array:
        tail = b"\0" * max(0, -row.offset - len(row.byte_match))
        samples.append((rng.randbytes(700) + row.byte_match + tail, "y.dat"))
    samples += [(rng.randbytes(rng.randrange(1, SNIFF_BYTES)), "r.bin") for _ in range(200)]
    samples += [
        (b"hello world\n" * 50, "notes.txt"),
        (b'{"a": 1}', "data.json"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "doc.pdf"),
        (b"#!/bin/sh\necho hi\n", "run.sh"),
        (b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>", "a.svg"),
        (b"\x89PNG\r\n\x1a\n" + rng.randbytes(100), "img.png"),
        (b"\x7fELF\x02\x01\x01" + bytes(100), "tool"),
    ]
    differences = [
        (name, sniff_mime(head, name), _full_sniff(head, name))
        for head, name in samples
        if sniff_mime(head, name) != _full_sniff(head, name)
    ]
    assert differences == []
    assert sniff_mime(b"\x89PNG\r\n\x1a\n" + bytes(100), "x.bin") == "image/png"


@pytest.mark.parametrize("unnamed_files", [True, False], ids=["O_TMPFILE", "named-temp"])
async def test_small_uploads_leave_nothing_in_staging_with_or_without_unnamed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed_files: bool
) -> None:
    """Small in-memory uploads are written to an unnamed file (O_TMPFILE) linked into
    place; where the platform has none, to a named temp file removed after the link.
    Either way every object is there, private, and staging is left empty."""
    if not unnamed_files:
        monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    home = tmp_path / "home"
    contents = [os.urandom(3000) for _ in range(40)] + [b"twice"] * 2
    async with FileStore(settings_for(home)) as store:
        results = await asyncio.gather(
            *(store.upload_file(data, filename=f"u{i}.bin") for i, data in enumerate(contents))
        )
        for result, data in zip(results, contents, strict=True):
            assert await store.read_bytes(result.file_id) == data
    objects = [p for p in (home / "objects" / "sha256").rglob("*") if p.is_file()]
    assert len(objects) == 41
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in objects)
    assert os.listdir(home / "objects" / ".staging") == []
