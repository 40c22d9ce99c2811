"""Each provider receives a file at most once, also when processes race: two stores on one
SQLite home stand for two processes of one host (their locks are real ``flock``s), and the
loopback provider holds chosen requests to open the window a slow network would."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from filetier import FileStore, StoreBusyError
from testbed.provider_server import ProviderServer
from tests.support.providers import KEY, copies, provider_settings, put


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as provider:
        yield provider


@pytest.fixture(autouse=True)
def out(home: Path) -> None:
    (home.parent / "out").mkdir(exist_ok=True)


async def test_an_upload_whose_lock_stays_busy_is_refused_not_sent_twice(
    home: Path, server: ProviderServer
) -> None:
    settings = provider_settings(
        home, server, lock_timeout_seconds=0.5, provider_timeout_seconds=10
    )
    async with FileStore(settings) as first, FileStore(settings) as second:
        file_id = await put(first, b"x" * 5000, "a.txt")
        server.set_delay(1.2, "/files", method="POST", count=1)  # the first upload is slow
        sent, refused = await asyncio.gather(
            first.get_provider_file_id(file_id, "kimi"),
            second.get_provider_file_id(file_id, "kimi"),
            return_exceptions=True,
        )
        assert isinstance(refused, StoreBusyError), refused
        assert "nothing was sent to kimi" in str(refused) and "try again" in str(refused)
        assert not isinstance(sent, BaseException)
        assert server.upload_count == 1
        assert [c["provider_file_id"] for c in copies(home)] == [sent.provider_file_id]
        again = await second.get_provider_file_id(file_id, "kimi")
        assert (again.provider_file_id, again.uploaded) == (sent.provider_file_id, False)


async def test_a_copy_ended_while_the_same_bytes_are_uploaded_again_keeps_the_new_copy(
    home: Path, server: ProviderServer
) -> None:
    """The owner deletes her last file with these bytes while its (expired) copy's delete
    at the provider is slow, and meanwhile stores the bytes again and asks for an id: the
    new copy goes into the same row, and ending the old one must not remove it."""
    data = b"expiring copy\n" * 100
    async with FileStore(provider_settings(home, server)) as store:
        first = await put(store, data, "1.txt")
        old = (await store.get_provider_file_id(first, "kimi")).provider_file_id
        with sqlite3.connect(home / "filetier.db") as conn:  # its provider-stated life is over
            conn.execute("UPDATE provider_file_uploads SET expires_at = '2000-01-01 00:00:00'")
        server.set_delay(1.0, f"/files/{old}", method="DELETE", count=1)
        deleting = asyncio.create_task(store.delete(first))
        await asyncio.sleep(0.3)  # the old copy's delete is held at the provider
        second = await put(store, data, "2.txt")
        new = await store.get_provider_file_id(second, "kimi")
        assert new.uploaded and new.provider_file_id != old
        await deleting
        await store.settle()
        assert [c["provider_file_id"] for c in copies(home)] == [new.provider_file_id]
        assert (await store.stat(second)).provider_file_ids == {"kimi": new.provider_file_id}
        again = await store.get_provider_file_id(second, "kimi")
        assert (again.provider_file_id, again.uploaded) == (new.provider_file_id, False)
        assert server.upload_count == 2


async def test_a_lost_copy_is_uploaded_again_once_when_two_processes_find_it_lost(
    home: Path, server: ProviderServer
) -> None:
    settings = provider_settings(home, server)
    async with FileStore(settings) as first, FileStore(settings) as second:
        file_id = await put(first, b"hello text\n" * 100, "t.txt")
        lost = (await first.get_provider_file_id(file_id, "kimi")).provider_file_id
        assert server.forget(lost)  # deleted in the provider's console
        server.set_delay(1.0, f"/files/{lost}/content", method="GET", count=1)
        slow = asyncio.create_task(second.get_file_text(file_id, "kimi"))
        await asyncio.sleep(0.3)  # the second process is still asking for the lost copy
        fast = await first.get_file_text(file_id, "kimi")  # finds it lost, uploads again
        assert (await slow).text == fast.text
        assert server.upload_count == 2  # the first upload and one re-upload, not two
        (copy,) = copies(home)
        assert copy["status"] == "active"


async def test_a_sync_does_not_forget_a_copy_uploaded_while_it_listed(
    home: Path, server: ProviderServer
) -> None:
    """The provider's list is answered slowly; meanwhile another process uploads a copy,
    which that list cannot show. The sync must not take its absence for a loss (it used to
    mark the copy deleted, and the next request uploaded the file again)."""
    settings = provider_settings(home, server, provider_timeout_seconds=10)
    async with FileStore(settings) as syncing, FileStore(settings) as other:
        file_id = await put(other, b"z" * 5000, "c.txt")
        server.set_delay(1.0, "/files", method="GET", count=1, answer=True)
        sync = asyncio.create_task(syncing.sync_providers(dry_run=False))
        await asyncio.sleep(0.3)  # the list is made; its answer is held
        uploaded = await other.get_provider_file_id(file_id, "kimi")
        report = await sync
        assert [a.kind for a in report.actions] == []
        (copy,) = copies(home)
        assert (copy["provider_file_id"], copy["status"]) == (uploaded.provider_file_id, "active")
        again = await other.get_provider_file_id(file_id, "kimi")
        assert (again.provider_file_id, again.uploaded) == (uploaded.provider_file_id, False)
        assert server.upload_count == 1
