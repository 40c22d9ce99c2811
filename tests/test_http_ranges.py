"""Range, If-Range and resumed downloads over HTTP (RFC 9110 section 14)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from filetier.interfaces.common.ranges import (
    UNSATISFIABLE,
    ByteRange,
    not_modified,
    parse_range,
    range_applies,
)
from tests.support.http import ALICE, TOKENS, LiveServer, assert_error, sha, upload

MiB = 1024 * 1024
SMALL = os.urandom(10_000)  # served from the memory tier
LARGE = os.urandom(7 * MiB + 77)  # served from the file, in 1 MiB chunks


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("ranges") / "home"
    with LiveServer(home, {"FILETIER_API_TOKENS": TOKENS}) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(ALICE) as opened:
        yield opened


@pytest.fixture(scope="module")
def files(server: LiveServer) -> dict[str, tuple[str, bytes]]:
    with server.client(ALICE) as client:
        return {
            "small": (upload(client, SMALL, "small.bin")["file_id"], SMALL),
            "large": (upload(client, LARGE, "large.bin")["file_id"], LARGE),
        }


# ------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, ByteRange(0, 0, 10)),
        ("bytes=2-5", 10, ByteRange(2, 5, 10)),
        ("bytes=5-", 10, ByteRange(5, 9, 10)),
        ("bytes=-3", 10, ByteRange(7, 9, 10)),
        ("bytes=-30", 10, ByteRange(0, 9, 10)),
        ("bytes=3-999", 10, ByteRange(3, 9, 10)),
        (" Bytes = 1 - 2 ", 10, ByteRange(1, 2, 10)),
        ("bytes=10-", 10, UNSATISFIABLE),
        ("bytes=10-20", 10, UNSATISFIABLE),
        ("bytes=-0", 10, UNSATISFIABLE),
        ("bytes=0-", 0, UNSATISFIABLE),
        ("bytes=-5", 0, UNSATISFIABLE),
        ("bytes=5-2", 10, None),
        ("bytes=0-1,3-4", 10, None),
        ("items=0-1", 10, None),
        ("bytes=a-b", 10, None),
        ("bytes=-", 10, None),
        ("bytes=²-3", 10, None),
        ("bytes", 10, None),
    ],
)
def test_parse_range(header: str, size: int, expected: object) -> None:
    assert parse_range(header, size) == expected


def test_validators() -> None:
    etag = '"abc"'
    assert not_modified('"abc"', etag) and not_modified('W/"abc"', etag)
    assert not_modified('"x", "abc"', etag) and not_modified("*", etag)
    assert not not_modified('"abcd"', etag) and not not_modified(None, etag)
    assert range_applies(None, etag) and range_applies('"abc"', etag)
    assert not range_applies('W/"abc"', etag)  # If-Range needs a strong match
    assert not range_applies("Sat, 01 Jan 2000 00:00:00 GMT", etag)


# ---------------------------------------------------------------------- live server


RANGES = [
    ("bytes=0-0", 0, 0),
    ("bytes=100-2000000", 100, 2000000),
    ("bytes=-1000", -1000, None),
    ("bytes=9000-", 9000, None),
]
LARGE_ONLY = [("bytes=1048575-1048577", 1048575, 1048577), ("bytes=3145728-", 3145728, None)]


@pytest.mark.parametrize(
    ("kind", "header", "start", "end"),
    [("small", *r) for r in RANGES] + [("large", *r) for r in RANGES + LARGE_ONLY],
)
def test_single_range_gives_206(
    client: httpx.Client,
    files: dict[str, tuple[str, bytes]],
    kind: str,
    header: str,
    start: int,
    end: int | None,
) -> None:
    fid, data = files[kind]
    first = len(data) + start if start < 0 else start
    last = min(end, len(data) - 1) if end is not None else len(data) - 1
    response = client.get(f"/v1/files/{fid}/content", headers={"Range": header})
    assert response.status_code == 206, response.text
    assert response.content == data[first : last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"
    assert response.headers["content-length"] == str(last - first + 1)
    assert response.headers["etag"] == f'"{sha(data)}"'
    assert response.headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize("kind", ["small", "large"])
def test_unsatisfiable_range_gives_416(
    client: httpx.Client, files: dict[str, tuple[str, bytes]], kind: str
) -> None:
    fid, data = files[kind]
    response = client.get(f"/v1/files/{fid}/content", headers={"Range": f"bytes={len(data)}-"})
    assert_error(response, 416, "RangeNotSatisfiable")
    assert response.headers["content-range"] == f"bytes */{len(data)}"


def test_range_on_an_empty_file_is_unsatisfiable(client: httpx.Client) -> None:
    fid = upload(client, b"", "empty.bin")["file_id"]
    response = client.get(f"/v1/files/{fid}/content", headers={"Range": "bytes=0-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */0"


@pytest.mark.parametrize("header", ["bytes=0-1,5-9", "bytes=9-2", "lines=1-2", "bytes=x-"])
def test_ignored_ranges_give_the_whole_file(
    client: httpx.Client, files: dict[str, tuple[str, bytes]], header: str
) -> None:
    fid, data = files["small"]
    response = client.get(f"/v1/files/{fid}/content", headers={"Range": header})
    assert response.status_code == 200
    assert response.content == data
    assert "content-range" not in response.headers


def test_head_ignores_range(client: httpx.Client, files: dict[str, tuple[str, bytes]]) -> None:
    fid, data = files["large"]
    response = client.head(f"/v1/files/{fid}/content", headers={"Range": "bytes=0-9"})
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(data))


@pytest.mark.parametrize("kind", ["small", "large"])
def test_if_range_with_the_current_etag_gives_the_range(
    client: httpx.Client, files: dict[str, tuple[str, bytes]], kind: str
) -> None:
    fid, data = files[kind]
    response = client.get(
        f"/v1/files/{fid}/content",
        headers={"Range": "bytes=5000-", "If-Range": f'"{sha(data)}"'},
    )
    assert response.status_code == 206
    assert response.content == data[5000:]


@pytest.mark.parametrize(
    "if_range", ['"0000"', 'W/"{etag}"', "Sat, 01 Jan 2000 00:00:00 GMT", '"{etag}x"']
)
def test_if_range_that_does_not_match_gives_the_whole_file(
    client: httpx.Client, files: dict[str, tuple[str, bytes]], if_range: str
) -> None:
    fid, data = files["large"]
    response = client.get(
        f"/v1/files/{fid}/content",
        headers={"Range": "bytes=5000-", "If-Range": if_range.format(etag=sha(data))},
    )
    assert response.status_code == 200
    assert response.content == data
    assert "content-range" not in response.headers


def resume(client: httpx.Client, fid: str, have: bytes, etag: str) -> bytes:
    """What a careful client does: ask for the rest if unchanged, else take what comes."""
    response = client.get(
        f"/v1/files/{fid}/content", headers={"Range": f"bytes={len(have)}-", "If-Range": etag}
    )
    assert response.status_code in {200, 206}, response.text
    if response.status_code == 206:
        assert response.headers["etag"] == etag
        return have + response.content
    return response.content


def partial_download(client: httpx.Client, fid: str, stop_after: int) -> tuple[bytes, str]:
    """Start a download and drop the connection after ``stop_after`` bytes."""
    got = bytearray()
    with client.stream("GET", f"/v1/files/{fid}/content") as response:
        etag = response.headers["etag"]
        for chunk in response.iter_raw(64 * 1024):
            got += chunk
            if len(got) >= stop_after:
                break
    return bytes(got[:stop_after]), etag


def test_resumed_download_of_an_unchanged_file(
    client: httpx.Client, files: dict[str, tuple[str, bytes]]
) -> None:
    fid, data = files["large"]
    have, etag = partial_download(client, fid, 3 * MiB + 5)
    assert resume(client, fid, have, etag) == data


def test_resumed_download_never_mixes_two_versions(client: httpx.Client) -> None:
    name = f"report-{os.urandom(4).hex()}.bin"
    v1 = os.urandom(5 * MiB)
    v2 = os.urandom(5 * MiB)
    old = upload(client, v1, name)["file_id"]
    have, etag = partial_download(client, old, 2 * MiB)

    # The file is replaced: the old id goes, the new version has a new id and ETag.
    assert client.delete(f"/v1/files/{old}").status_code == 204
    new = upload(client, v2, name)["file_id"]
    assert_error(client.get(f"/v1/files/{old}/content", headers={"Range": "bytes=0-"}), 404)

    # The client finds the file by name again and resumes with its old validator.
    found = client.get("/v1/files", params={"name": name}).json()["items"]
    assert [item["file_id"] for item in found] == [new]
    result = resume(client, new, have, etag)

    assert result == v2  # a whole new copy, not v1's head glued to v2's tail
    assert hashlib.sha256(result).hexdigest() == sha(v2)


def test_a_range_of_a_corrupt_copy_is_refused(tmp_path: Path) -> None:
    data = os.urandom(6 * MiB)
    with (
        LiveServer(tmp_path / "home", {"FILETIER_API_TOKENS": TOKENS}) as live,
        live.client() as client,
    ):
        fid = upload(client, data, "rot.bin")["file_id"]
        digest = sha(data)
        stored = live.home / "objects" / "sha256" / digest[:2] / digest[2:4] / digest
        with stored.open("r+b") as handle:
            handle.seek(5 * MiB)
            handle.write(b"\0" if data[5 * MiB] else b"\1")
        # The range itself (the first bytes) is intact; the copy as a whole is not.
        response = client.get(f"/v1/files/{fid}/content", headers={"Range": "bytes=0-99"})
    assert_error(response, 500, "IntegrityError")


def test_remote_primary_ranges_come_from_the_verified_disk_cache(tmp_path: Path) -> None:
    settings = {
        "FILETIER_API_TOKENS": TOKENS,
        "FILETIER_PRIMARY_URL": f"file://{tmp_path / 'remote'}",
    }
    data = os.urandom(5 * MiB + 3)
    with LiveServer(tmp_path / "home", settings) as live, live.client() as client:
        fid = upload(client, data, "r.bin")["file_id"]
        whole = client.get(f"/v1/files/{fid}/content")
        part = client.get(f"/v1/files/{fid}/content", headers={"Range": "bytes=-10"})
    assert whole.content == data
    assert part.status_code == 206 and part.content == data[-10:]
