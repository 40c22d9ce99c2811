"""Download links, tried as their holders would: a real server, a plain HTTP client
without a token, and an attacker who edits, replays or guesses links."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from filetier import FileStore, Settings
from filetier.links import LINK_INVALID_MESSAGE, load_secret
from testbed.services import S3Server
from tests.support.http import ALICE, BOB, TOKENS, LiveServer, assert_error, upload

BIG = 5 * 1024 * 1024  # above the memory tier's item size: streamed from a local copy


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("links") / "home"
    live = LiveServer(home, {"FILETIER_API_TOKENS": TOKENS, "FILETIER_LINK_MAX_SECONDS": "600"})
    # Links name the public URL; "localhost" is one of the default allowed hosts.
    live.settings["FILETIER_PUBLIC_URL"] = f"http://localhost:{live.port}/"
    with live:
        yield live


@pytest.fixture
def alice(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(ALICE) as client:
        yield client


@pytest.fixture
def bob(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(BOB) as client:
        yield client


def mint(client: httpx.Client, file_id: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/files/{file_id}/links", json=body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def assert_dead(response: httpx.Response) -> None:
    """Every unusable link gets exactly this answer, whatever the reason."""
    assert_error(response, 404, "NotFoundError")
    assert response.json()["error"]["message"] == LINK_INVALID_MESSAGE


CONTENT_HEADERS = ("etag", "repr-digest", "content-disposition", "content-type", "accept-ranges")


@pytest.mark.parametrize("size", [1000, BIG])
def test_a_link_serves_the_verified_content_without_a_token(
    server: LiveServer, alice: httpx.Client, size: int
) -> None:
    data = os.urandom(size)
    file_id = upload(alice, data, "report.bin")["file_id"]
    link = mint(alice, file_id, expires_in=60)
    assert link["url"].startswith(f"http://localhost:{server.port}/links/")
    assert link["revocable"] is True and link["single_use"] is False

    fetched = httpx.get(link["url"], timeout=30)  # no Authorization header at all
    authenticated = alice.get(f"/v1/files/{file_id}/content")
    assert fetched.status_code == 200 and fetched.content == data
    for name in CONTENT_HEADERS:
        assert fetched.headers[name] == authenticated.headers[name], name
    assert "report.bin" in fetched.headers["content-disposition"]

    head = httpx.head(link["url"])
    assert head.status_code == 200 and head.headers["content-length"] == str(size)
    part = httpx.get(link["url"], headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{size}"
    assert (
        httpx.get(link["url"], headers={"If-None-Match": head.headers["etag"]}).status_code == 304
    )
    # The access log tells the uses of this link apart, but never holds the live link.
    token = link["url"].rsplit("/", 1)[1]
    link_id, signature = token.split(".", 1)
    log = server.log()
    assert f"/links/{link_id}." in log
    assert signature not in log and token not in log


def test_a_range_bound_link_serves_only_its_range(alice: httpx.Client) -> None:
    data = os.urandom(4096)
    file_id = upload(alice, data)["file_id"]
    link = mint(alice, file_id, range="bytes=100-199")
    assert link["range"] == "bytes 100-199/4096"
    for asked in ({}, {"Range": "bytes=0-4095"}, {"Range": "bytes=150-"}):
        response = httpx.get(link["url"], headers=asked)
        assert response.status_code == 206 and response.content == data[100:200], asked
        assert response.headers["content-range"] == "bytes 100-199/4096"
    bad = alice.post(f"/v1/files/{file_id}/links", json={"range": "bytes=5000-"})
    assert_error(bad, 400, "InvalidInputError")


def test_lifetimes_are_bounded_and_links_expire(alice: httpx.Client) -> None:
    file_id = upload(alice, b"short-lived")["file_id"]
    for wrong in (0, -5, 601, 1.5, "60", True):
        response = alice.post(f"/v1/files/{file_id}/links", json={"expires_in": wrong})
        assert_error(response, 400, "InvalidInputError")
    assert (
        "600"
        in alice.post(f"/v1/files/{file_id}/links", json={"expires_in": 601}).json()["error"][
            "message"
        ]
    )
    unknown = alice.post(f"/v1/files/{file_id}/links", json={"expires": 60})
    assert_error(unknown, 400, "InvalidInputError")

    asked_at = datetime.now(UTC)
    link = mint(alice, file_id, expires_in=1)
    # A link lives at least the seconds asked for, at most one more (whole seconds).
    expires_at = datetime.fromisoformat(link["expires_at"])
    assert asked_at + timedelta(seconds=1) <= expires_at < datetime.now(UTC) + timedelta(seconds=2)
    assert httpx.get(link["url"]).content == b"short-lived"
    time.sleep(2.1)
    assert_dead(httpx.get(link["url"]))


def test_tampered_guessed_and_malformed_links_get_the_same_answer(
    server: LiveServer, alice: httpx.Client
) -> None:
    file_id = upload(alice, b"tamper with me")["file_id"]
    link = mint(alice, file_id)
    base, token = link["url"].rsplit("/", 1)
    link_id, signature = token.split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    other = mint(alice, file_id)["url"].rsplit("/", 1)[1]
    forged = [
        f"{link_id}.{flipped}",  # the signature edited
        f"{link_id}.",  # no signature
        f"{link_id}.{other.split('.')[1]}",  # another link's signature
        f"{'0' * 32}.{signature}",  # an id that was never minted
        "not-a-link",
        f"{link_id[:-1]}.{signature}",
    ]
    for bad in forged:
        assert_dead(httpx.get(f"{base}/{bad}"))
    assert_dead(httpx.get(link["url"], params={"x": "1"}))  # nothing added to a link
    assert httpx.get(link["url"]).content == b"tamper with me"  # the real one still works


def test_another_owner_can_neither_mint_nor_revoke_links_to_my_files(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    file_id = upload(alice, b"alice's own")["file_id"]
    stranger = bob.post(f"/v1/files/{file_id}/links", json={})
    never = bob.post("/v1/files/0192b5e0-7c1a-7d3e-9f00-1a2b3c4d5e6f/links", json={})
    assert_error(stranger, 404, "NotFoundError")
    assert_error(never, 404, "NotFoundError")
    assert stranger.json()["error"]["message"].replace(file_id, "ID") == never.json()["error"][
        "message"
    ].replace("0192b5e0-7c1a-7d3e-9f00-1a2b3c4d5e6f", "ID")

    link = mint(alice, file_id)
    assert_error(bob.delete(f"/v1/links/{link['link_id']}"), 404, "NotFoundError")
    assert_error(bob.delete(f"/v1/files/{file_id}/links"), 404, "NotFoundError")
    assert bob.delete("/v1/links").json() == {"revoked": 0}
    assert httpx.get(link["url"]).content == b"alice's own"
    # Links are minted only with a token.
    assert httpx.post(link["url"].replace("/links/", "/v1/files/x/links/")).status_code == 401


def test_revoking_one_link_a_files_links_or_all_of_an_owners(alice: httpx.Client) -> None:
    first = upload(alice, b"first file")["file_id"]
    second = upload(alice, b"second file")["file_id"]
    one, kept = mint(alice, first), mint(alice, first)
    assert alice.delete(f"/v1/links/{one['link_id']}").json() == {"revoked": 1}
    assert_dead(httpx.get(one["url"]))
    assert httpx.get(kept["url"]).content == b"first file"
    assert_error(alice.delete(f"/v1/links/{one['link_id']}"), 404, "NotFoundError")

    other = mint(alice, second)
    assert alice.delete(f"/v1/files/{first}/links").json() == {"revoked": 1}
    assert_dead(httpx.get(kept["url"]))
    assert httpx.get(other["url"]).content == b"second file"

    more = [mint(alice, second), mint(alice, first)]
    assert alice.delete("/v1/links").json()["revoked"] >= 3
    for link in [other, *more]:
        assert_dead(httpx.get(link["url"]))


def test_a_link_dies_with_its_file(alice: httpx.Client) -> None:
    file_id = upload(alice, b"to be deleted")["file_id"]
    link = mint(alice, file_id)
    assert httpx.get(link["url"]).status_code == 200
    assert alice.delete(f"/v1/files/{file_id}").status_code == 204
    assert_dead(httpx.get(link["url"]))
    assert httpx.head(link["url"]).status_code == 404


def test_a_single_use_link_serves_exactly_once_under_concurrent_use(
    alice: httpx.Client,
) -> None:
    data = os.urandom(50_000)
    file_id = upload(alice, data)["file_id"]
    link = mint(alice, file_id, single_use=True)
    assert link["single_use"] is True
    assert httpx.head(link["url"]).status_code == 200  # looking does not use it up

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(client.get(link["url"]) for _ in range(12)))

    responses = asyncio.run(race())
    served = [r for r in responses if r.status_code == 200]
    assert len(served) == 1 and served[0].content == data
    for response in responses:
        if response.status_code != 200:
            assert_dead(response)
    assert_dead(httpx.get(link["url"]))


def test_a_single_use_link_is_not_used_up_by_a_request_that_gets_no_file(
    server: LiveServer, alice: httpx.Client
) -> None:
    """The stored bytes unreadable for a moment (a disk hiccup, a store down): the link's
    holder gets an error, and the link still serves once they are back."""
    data = os.urandom(BIG)  # streamed from the primary, not held in memory
    uploaded = upload(alice, data)
    link = mint(alice, uploaded["file_id"], single_use=True)
    sha256 = uploaded["sha256"]
    stored = server.home / "objects" / "sha256" / sha256[:2] / sha256[2:4] / sha256
    aside = stored.with_name("aside")
    stored.rename(aside)
    try:
        failed = httpx.get(link["url"], timeout=30)
        assert failed.status_code >= 500, failed.text
    finally:
        aside.rename(stored)
    served = httpx.get(link["url"], timeout=30)
    assert served.status_code == 200 and served.content == data
    assert_dead(httpx.get(link["url"]))


def test_each_use_is_in_the_download_history(server: LiveServer, alice: httpx.Client) -> None:
    data = os.urandom(BIG)
    file_id = upload(alice, data)["file_id"]
    link = mint(alice, file_id)
    assert httpx.get(link["url"]).content == data
    assert httpx.get(link["url"], headers={"Range": "bytes=0-9"}).status_code == 206

    async def history() -> list[Any]:
        settings = Settings(home=server.home, bookkeeping_flush_seconds=0.05)  # type: ignore[call-arg]
        async with FileStore(settings) as store:
            return await store.as_owner("alice").history(file_id)

    deadline = time.monotonic() + 10
    while True:
        events = [e for e in asyncio.run(history()) if e.downloaded_by == f"link:{link['link_id']}"]
        if len(events) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(events) == 2
    assert all(e.verified for e in events)


def test_the_link_key_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")  # type: ignore[call-arg]
    first = load_secret(settings)
    assert load_secret(settings) == first and len(first) >= 32
    assert (tmp_path / "home" / "link-secret").stat().st_mode & 0o777 == 0o600
    configured = Settings(home=tmp_path / "home", link_secret="k" * 40)  # type: ignore[call-arg]
    assert load_secret(configured) == b"k" * 40


async def test_direct_urls_need_a_signing_primary(store: FileStore) -> None:
    from filetier.errors import InvalidInputError

    record = await store.upload_file(b"local only", filename="a.txt")
    with pytest.raises(InvalidInputError, match="S3-compatible"):
        await store.presigned_url(record.file_id, 60)


async def test_a_direct_url_serves_the_object_from_s3(tmp_path: Path, moto: S3Server) -> None:
    settings = Settings(  # type: ignore[call-arg]
        home=tmp_path / "home", fsync=False, **moto.settings_overrides(moto.create_bucket())
    )
    async with FileStore(settings) as store:
        record = await store.upload_file(b"straight from the bucket", filename="b.txt")
        url, expires_at = await store.presigned_url(record.file_id, 120)
        other = store.as_owner("mallory")
        with pytest.raises(FileNotFoundError):
            await other.presigned_url(record.file_id, 120)
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200 and response.content == b"straight from the bucket"
    assert "Signature" in url and expires_at.tzinfo is not None


async def test_on_postgresql_a_single_use_link_is_claimed_once_across_processes(
    home: Path, pg_url: str
) -> None:
    """Two stores (two hosts' processes) on one PostgreSQL database share links: a link
    minted by one is checked by the other, and a single-use link is claimed exactly once
    among concurrent claims from both; a revocation on one holds on the other."""
    from filetier.errors import NotFoundError
    from filetier.links import LinkAuthority

    def settings(name: str) -> Settings:
        return Settings(  # type: ignore[call-arg]
            home=home / name, database_url=pg_url, fsync=False, link_secret="s" * 40
        )

    async with FileStore(settings("a")) as one, FileStore(settings("b")) as two:
        record = await one.upload_file(b"shared link", filename="s.txt")
        here = LinkAuthority(one.settings, one.db)
        there = LinkAuthority(two.settings, two.db)
        minted = await here.mint("default", record.file_id, expires_in=60, single_use=True)
        grants = [await here.check(minted.token), await there.check(minted.token)]

        async def claim(links: LinkAuthority, grant: Any) -> bool:
            try:
                await links.use(grant)
            except NotFoundError:
                return False
            return True

        wins = await asyncio.gather(
            *(
                claim(links, grant)
                for links, grant in zip([here, there] * 5, grants * 5, strict=True)
            )
        )
        assert sum(wins) == 1
        with pytest.raises(NotFoundError):
            await there.check(minted.token)

        lasting = await there.mint("default", record.file_id, expires_in=60)
        assert (await here.check(lasting.token)).file_id == record.file_id
        assert await here.revoke("default", file_id=record.file_id) >= 1
        with pytest.raises(NotFoundError):
            await there.check(lasting.token)
