"""The HTTP and MCP surface seen by a stranger and by a second owner: /metrics needs a
token, the Host check refuses malformed and test-only names, MCP sessions belong to the
owner that opened them. Against a real ``filetier serve`` process on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.http import (
    ALICE,
    BOB,
    METRICS,
    METRICS_TOKEN,
    LiveServer,
    assert_error,
    upload,
)
from tests.support.prometheus_text import parse, values

OPERATOR = "operator-token-0123456789abcdef"
TOKENS = f"alice:{ALICE},bob:{BOB},default:{OPERATOR}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("surface") / "home"
    settings = {"FILETIER_API_TOKENS": TOKENS, "FILETIER_METRICS_TOKEN": METRICS_TOKEN}
    with LiveServer(home, settings) as live:
        yield live


def raw_request(port: int, head: str) -> bytes:
    """Send ``head`` as is (no client library tidies it) and return the status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        answer = b""
        while b"\r\n" not in answer:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    return answer.split(b"\r\n", 1)[0]


# ---------------------------------------------------------------------------- /metrics


@pytest.mark.parametrize(
    "authorization",
    [None, f"Bearer {ALICE}", f"Bearer {BOB}", "Bearer wrong-token-0123456789", "Basic x"],
)
def test_metrics_refuse_strangers_and_owners(server: LiveServer, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(f"{server.url}/metrics", headers=headers)
    assert_error(response, 401, "Unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "filetier_" not in response.text


def test_metrics_answer_the_metrics_token_and_the_operator(server: LiveServer) -> None:
    with server.client(ALICE) as alice:
        upload(alice, b"x" * 12345, "counted.bin")
    for headers in (METRICS, {"Authorization": f"Bearer {OPERATOR}"}):
        response = httpx.get(f"{server.url}/metrics", headers=headers)
        assert response.status_code == 200
        posts = values(
            response.text, "filetier_http_requests_total", route="/v1/files", method="POST"
        )
        assert posts and all(n >= 1 for _labels, n in posts)
    # Sizes appear only as per-route totals: no series is labelled by file, owner or size.
    text = httpx.get(f"{server.url}/metrics", headers=METRICS).text
    labels = {name for sample in parse(text) for name in sample.labels}
    assert not labels & {"owner", "file_id", "size", "filename"}


def test_the_metrics_token_opens_nothing_else(server: LiveServer) -> None:
    with server.client(METRICS_TOKEN) as scraper:
        assert_error(scraper.get("/v1/files"), 401, "Unauthorized")
        assert scraper.post("/mcp", json={}).status_code == 401


def test_readyz_says_ready_and_nothing_more(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/readyz", headers={"Host": "10.9.8.7"})
    assert response.json() == {"status": "ready"}


# ------------------------------------------------------------------------- Host header

MALFORMED_HOSTS = [
    "testserver",
    "testserver:80",
    "127.0.0.1:99999",
    "127.0.0.1:0",
    "127.0.0.1:",
    "127.0.0.1:80:80",
    "[::1]:65536",
    "[::1]junk",
    "[::1",
    "[not-an-ip]",
    "alice@127.0.0.1",
    "127.0.0.1 evil.example",
    "127.0.0.1,evil.example",
    "127.0.0.1/path",
    "127.0.0.1%2fx",
    "localhost..",
]


@pytest.mark.parametrize("host", MALFORMED_HOSTS)
def test_malformed_and_test_only_hosts_are_refused(server: LiveServer, host: str) -> None:
    status = raw_request(
        server.port,
        f"GET /v1/files HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ALICE}\r\n"
        "Connection: close\r\n\r\n",
    )
    assert status.startswith((b"HTTP/1.1 421 ", b"HTTP/1.1 400 ")), (host, status)


def test_an_empty_host_and_two_hosts_are_refused(server: LiveServer) -> None:
    auth = f"Authorization: Bearer {ALICE}\r\nConnection: close\r\n"
    empty = raw_request(server.port, f"GET /v1/files HTTP/1.1\r\nHost:\r\n{auth}\r\n")
    two = raw_request(
        server.port,
        f"GET /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n{auth}\r\n",
    )
    assert empty.startswith((b"HTTP/1.1 421 ", b"HTTP/1.1 400 "))
    assert two.startswith((b"HTTP/1.1 421 ", b"HTTP/1.1 400 "))
    good = raw_request(server.port, f"GET /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n")
    assert good.startswith(b"HTTP/1.1 200 ")


def test_a_wildcard_still_refuses_malformed_hosts(tmp_path: Any) -> None:
    settings = {"FILETIER_API_TOKENS": TOKENS, "FILETIER_ALLOWED_HOSTS": "*,testserver"}
    with LiveServer(tmp_path / "home", settings) as live:

        def status(host: str) -> bytes:
            return raw_request(
                live.port,
                f"GET /v1/files HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ALICE}\r\n"
                "Connection: close\r\n\r\n",
            )

        assert status("anything.example:8443").startswith(b"HTTP/1.1 200 ")
        assert status("testserver").startswith(b"HTTP/1.1 200 ")  # configured explicitly
        for host in ("alice@anything.example", "a b", "x:99999", "[::1]junk"):
            assert status(host).startswith((b"HTTP/1.1 421 ", b"HTTP/1.1 400 ")), host


# ------------------------------------------------------------------------- MCP sessions


async def test_an_mcp_session_belongs_to_the_owner_that_opened_it(server: LiveServer) -> None:
    """Bob, holding Alice's session id, gets the 404 of an unknown session: he can neither
    call tools in it nor end it, and Alice's session carries on. (Sessions exist for
    clients of the handshake-era protocol, ``mode="legacy"``; the current one has none.)"""
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    with server.client(ALICE) as alice_http:
        mine = upload(alice_http, b"alice's session file", "session.txt")
    seen: dict[str, str] = {}

    async def remember(request: httpx2.Request) -> None:
        for name in ("mcp-session-id", "mcp-protocol-version"):
            if name in request.headers:
                seen[name] = request.headers[name]

    headers = {"Authorization": f"Bearer {ALICE}"}
    async with httpx2.AsyncClient(
        headers=headers, timeout=30, event_hooks={"request": [remember]}
    ) as http:
        transport = streamable_http_client(f"{server.url}/mcp", http_client=http)
        async with Client(transport, mode="legacy") as alice:
            first = await alice.call_tool("list_files", {"sha256": mine["sha256"]})
            assert not first.is_error
            session = seen["mcp-session-id"]

            call = {
                "jsonrpc": "2.0",
                "id": 99,
                "method": "tools/call",
                "params": {"name": "list_files", "arguments": {}},
            }
            stolen = {
                "Authorization": f"Bearer {BOB}",
                "mcp-session-id": session,
                "mcp-protocol-version": seen["mcp-protocol-version"],
                "Accept": "application/json, text/event-stream",
            }
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as bob:
                called = await bob.post("/mcp", json=call, headers=stolen)
                ended = await bob.delete("/mcp", headers=stolen)
                unknown = await bob.post(
                    "/mcp", json=call, headers={**stolen, "mcp-session-id": "0" * 32}
                )
            assert called.status_code == 404, called.text
            assert ended.status_code == 404, ended.text
            # Exactly the answer to an id that does not exist: nothing tells them apart.
            assert called.json() == unknown.json()
            assert "alice" not in called.text and mine["file_id"] not in called.text

            again = await alice.call_tool("list_files", {"sha256": mine["sha256"]})
            assert not again.is_error
            assert again.structured_content is not None
            assert again.structured_content["total"] == 1


# ------------------------------------------------------------------- JSON and integers

DEEP = "[" * 100_000 + "]" * 100_000  # far past the interpreter's recursion limit
DEEP_HEADER = "[" * 5_000 + "]" * 5_000  # what fits in a request head


def assert_bad_input(response: httpx.Response, *kinds: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] in (kinds or ("InvalidInputError",))
    assert "nested too deeply" in error["message"]


def test_deeply_nested_json_is_a_400_on_every_json_input(server: LiveServer) -> None:
    with server.client(ALICE) as alice:
        fid = upload(alice, b"nested", "nested.txt")["file_id"]
        before = alice.get("/v1/files").json()["total"]
    for metadata in (DEEP_HEADER, '{"a": ' + DEEP_HEADER + "}"):
        with server.client(ALICE) as alice:  # a 500 would have closed the connection
            response = alice.post(
                "/v1/files", content=b"x", headers={"X-Filetier-Metadata": metadata}
            )
        assert_bad_input(response, "InvalidMetadataError")
    bodies = {
        "/v1/files/by-hash": '{"sha256": "' + "a" * 64 + '", "size": 1, "filename": "x", '
        '"metadata": {"a": ' + DEEP + "}}",
        f"/v1/files/{fid}/provider-id": '{"provider": ' + DEEP + "}",
    }
    for path, body in bodies.items():
        with server.client(ALICE) as alice:
            response = alice.post(path, content=body, headers={"Content-Type": "application/json"})
        assert_bad_input(response)
    with server.client(ALICE) as alice:
        assert alice.get("/v1/files").json()["total"] == before  # nothing stored meanwhile
        assert alice.get(f"/v1/files/{fid}/content").content == b"nested"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"offset": "9" * 30}, "offset must be at most"),
        ({"offset": str(2**63)}, "offset must be at most"),
        ({"limit": str(2**64)}, "limit must be at most"),
        ({"offset": "-1"}, "offset cannot be negative"),
        ({"limit": "1" + "0" * 40}, "limit must be an integer"),
    ],
)
def test_out_of_range_integers_are_a_400(
    server: LiveServer, params: dict[str, str], message: str
) -> None:
    with server.client(ALICE) as alice:
        response = alice.get("/v1/files", params=params)
    assert_error(response, 400, "InvalidInputError")
    assert message in response.json()["error"]["message"]


async def mcp_call(server: LiveServer, tool: str, arguments: dict[str, Any]) -> Any:
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {ALICE}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(f"{server.url}/mcp", http_client=http)
        async with Client(transport) as client:
            return await client.call_tool(tool, arguments)


@pytest.mark.parametrize(
    "arguments",
    [
        {"offset": 10**30},
        {"offset": 2**63},
        {"offset": 10**12 + 1},
        {"limit": 10**30},
        {"limit": 10**30, "offset": 10**30},
        {"offset": -1},
    ],
)
async def test_mcp_list_files_refuses_out_of_range_pages(
    server: LiveServer, arguments: dict[str, Any]
) -> None:
    result = await mcp_call(server, "list_files", arguments)
    assert result.is_error
    text = " ".join(getattr(part, "text", "") for part in result.content)
    assert "offset" in text or "limit" in text
    assert "Traceback" not in text and "Overflow" not in text


async def test_mcp_list_files_past_the_end_is_an_empty_page(server: LiveServer) -> None:
    result = await mcp_call(server, "list_files", {"offset": 10**12})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["items"] == []
    assert result.structured_content["next_offset"] is None


async def test_mcp_deeply_nested_metadata_is_a_tool_error(server: LiveServer) -> None:
    nested: Any = "leaf"
    for _ in range(50):
        nested = {"a": nested}
    result = await mcp_call(server, "upload_file", {"text": "x", "metadata": nested})
    assert result.is_error
    text = " ".join(getattr(part, "text", "") for part in result.content)
    assert "nested deeper" in text


# --------------------------------------------------------------------- forged log lines

FORGED = 'INFO:     127.0.0.1:1 - "DELETE /v1/files/all HTTP/1.1" 204'


@pytest.mark.parametrize(
    "name", ["a\nb.txt", "report\r\n.pdf", "tab\there.txt", "esc\x1b[31m.txt", "sep\u2028x.txt"]
)
def test_a_filename_with_control_characters_is_refused(server: LiveServer, name: str) -> None:
    with server.client(ALICE) as alice:
        before = alice.get("/v1/files").json()["total"]
        by_query = alice.post("/v1/files", params={"filename": name}, content=b"x")
        by_hash = alice.post(
            "/v1/files/by-hash",
            json={"sha256": "a" * 64, "size": 1, "filename": name},
        )
        assert alice.get("/v1/files").json()["total"] == before
    for response in (by_query, by_hash):
        assert_error(response, 400, "InvalidInputError")
        assert "control characters" in response.json()["error"]["message"]


def test_a_request_cannot_forge_a_log_line(server: LiveServer) -> None:
    from urllib.parse import quote

    forged_path = "/v1/files/" + quote("x\n" + FORGED + "\nINFO:     x", safe="")
    with server.client(ALICE) as alice:
        assert alice.get(forged_path).status_code in {400, 404}
        alice.get("/v1/nothing" + quote("\r\n" + FORGED, safe=""))
    log = server.log()
    assert not any(line.startswith(FORGED) for line in log.splitlines())
    assert "%0AINFO%3A" in log  # the request is logged, still percent-encoded, on one line


def test_every_configured_log_handler_escapes_control_characters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import logging
    import logging.config

    from filetier.interfaces.serve import log_config

    saved = logging.getLogger().handlers[:]
    logging.config.dictConfig(log_config())
    try:
        logging.getLogger("filetier.http").warning("upload of %s failed", "a\n" + FORGED)
        logging.getLogger("mcp.server").warning("session %s", "b\r\n" + FORGED)
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/x\n" + FORGED, "1.1", 200
        )
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
        logging.getLogger().handlers[:] = saved
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 3, err
    assert all(not line.startswith(FORGED) for line in err.splitlines())
    assert err.count("\\n" + FORGED) == 3


async def test_a_source_path_with_a_newline_is_stored_under_a_clean_name(
    store: Any, tmp_path: Any
) -> None:
    source = tmp_path / "two\nlines\x1b.txt"
    source.write_bytes(b"from a strange name")
    uploaded = await store.upload_file(source)
    record = await store.stat(uploaded.file_id)
    assert record.filename == "two\ufffdlines\ufffd.txt"


# ------------------------------------------------------------------ typing by content


def zip_of(*entries: tuple[str, bytes]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


DOCX = zip_of(
    ("[Content_Types].xml", b"<Types/>"),
    ("_rels/.rels", b"<Relationships/>"),
    ("word/document.xml", b"<w:document/>"),
)
PLAIN_ZIP = zip_of(("payload.exe", b"MZ" + bytes(200)), ("readme.txt", b"hi"))
# A minimal PE image: the DOS header's e_lfanew (at 0x3C) points at "PE\0\0" and a COFF
# header for x86-64.
PE = b"MZ" + bytes(0x3A) + (0x40).to_bytes(4, "little") + b"PE\x00\x00" + b"\x64\x86" + bytes(300)


def readme_type_limits_example() -> str:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    match = re.search(
        r"`FILETIER_TYPE_LIMITS` \| [^|]+ \| per-type limits, e\.g\. `([^`]+)`", readme
    )
    assert match, "the README's FILETIER_TYPE_LIMITS row has moved"
    return match.group(1)


@pytest.fixture(scope="module")
def typed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("typed") / "home"
    limits = readme_type_limits_example() + ",application/zip=0"
    settings = {"FILETIER_API_TOKENS": TOKENS, "FILETIER_TYPE_LIMITS": limits}
    with LiveServer(home, settings) as live:
        yield live


@pytest.mark.parametrize(
    ("data", "name", "declared"),
    [
        (PLAIN_ZIP, "letter.docx", None),
        (PLAIN_ZIP, "sheet.xlsx", None),
        (
            PLAIN_ZIP,
            "letter.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (PLAIN_ZIP, "book.epub", "application/epub+zip"),
        (PLAIN_ZIP, "archive.zip", None),
    ],
)
def test_a_zip_is_a_zip_whatever_it_is_called(
    typed: LiveServer, data: bytes, name: str, declared: str | None
) -> None:
    params = {"filename": name, **({"mime_type": declared} if declared else {})}
    with typed.client(ALICE) as alice:
        response = alice.post("/v1/files", params=params, content=data)
    assert_error(response, 415, "TypeNotAllowedError")
    assert "application/zip" in response.json()["error"]["message"]


def test_a_real_ooxml_document_is_typed_as_one(typed: LiveServer) -> None:
    with typed.client(ALICE) as alice:
        for name in ("letter.docx", "letter.zip", "letter"):
            response = alice.post("/v1/files", params={"filename": name}, content=DOCX)
            assert response.status_code == 201, response.text
            assert response.json()["mime_type"] == (
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            )


@pytest.mark.parametrize("name", ["setup.exe", "report.pdf", "photo.png", "notes.txt", "x"])
def test_the_readme_example_refuses_a_real_pe_file(typed: LiveServer, name: str) -> None:
    assert "application/x-dosexec=0" in readme_type_limits_example()
    with typed.client(ALICE) as alice:
        response = alice.post("/v1/files", params={"filename": name}, content=PE)
        by_type = alice.post(
            "/v1/files",
            params={"filename": name, "mime_type": "application/pdf"},
            content=PE,
        )
    for answer in (response, by_type):
        assert_error(answer, 415, "TypeNotAllowedError")
