"""Who may use the HTTP API, and what one owner can learn of another's files: nothing."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from filetier import FileStore, Settings
from filetier.interfaces.http.access import AccessGate, HostPolicy
from filetier.tokens import TokenAuthority
from testbed.services import free_port
from tests.support.http import (
    ALICE,
    BOB,
    TOKENS,
    LiveServer,
    assert_error,
    server_env,
    sha,
    upload,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("auth") / "home"
    with LiveServer(home, {"FILETIER_API_TOKENS": TOKENS}) as live:
        yield live


@pytest.fixture
def alice(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(ALICE) as client:
        yield client


@pytest.fixture
def bob(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(BOB) as client:
        yield client


ROUTES = [
    ("GET", "/v1/files"),
    ("POST", "/v1/files"),
    ("POST", "/v1/files/by-hash"),
    ("GET", "/v1/files/0192b5e0-7c1a-7d3e-9f00-1a2b3c4d5e6f"),
    ("DELETE", "/v1/files/0192b5e0-7c1a-7d3e-9f00-1a2b3c4d5e6f"),
    ("GET", "/v1/files/0192b5e0-7c1a-7d3e-9f00-1a2b3c4d5e6f/content"),
    ("HEAD", "/v1/files/0192b5e0-7c1a-7d3e-9f00-1a2b3c4d5e6f/content"),
    ("POST", "/v1/files/0192b5e0-7c1a-7d3e-9f00-1a2b3c4d5e6f/provider-id"),
    ("GET", "/v1/nothing-here"),
    ("POST", "/mcp"),
    ("GET", "/mcp/anything"),
]


# ---------------------------------------------------------------------------- tokens


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789", f"Basic {ALICE}", "Bearer", f"bearer{ALICE}"],
)
def test_every_protected_route_needs_a_valid_token(
    server: LiveServer, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.request(method, f"{server.url}{path}", headers=headers, content=b"x")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    if method != "HEAD":
        assert_error(response, 401, "Unauthorized")


def test_a_wrong_token_is_told_it_is_invalid(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/v1/files", headers={"Authorization": "Bearer nope-nope"})
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "nope-nope" not in response.text


def test_the_scheme_is_case_insensitive(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/v1/files", headers={"Authorization": f"bEaReR {ALICE}"})
    assert response.status_code == 200


def test_public_routes_need_no_token(server: LiveServer) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert httpx.get(f"{server.url}{path}").status_code == 200, path


# ------------------------------------------------------------------------ isolation


def test_one_owner_never_sees_anothers_file(alice: httpx.Client, bob: httpx.Client) -> None:
    data = os.urandom(20_000)
    large = os.urandom(5 * 1024 * 1024)
    fid = upload(alice, data, "alice-secret.txt")["file_id"]
    large_id = upload(alice, large, "alice-big.bin")["file_id"]

    for target in (fid, large_id):
        assert_error(bob.get(f"/v1/files/{target}"), 404, "NotFoundError")
        assert_error(bob.get(f"/v1/files/{target}/content"), 404, "NotFoundError")
        ranged = bob.get(f"/v1/files/{target}/content", headers={"Range": "bytes=0-10"})
        assert_error(ranged, 404)
        assert bob.head(f"/v1/files/{target}/content").status_code == 404
        assert_error(bob.delete(f"/v1/files/{target}"), 404, "NotFoundError")
        provider = bob.post(f"/v1/files/{target}/provider-id", json={"provider": "kimi"})
        assert_error(provider, 404, "NotFoundError")

    assert bob.get("/v1/files").json()["items"] == [] or all(
        item["owner"] == "bob" for item in bob.get("/v1/files").json()["items"]
    )
    for params in ({"sha256": sha(data)}, {"name": "alice-secret"}, {"limit": 1000}):
        listed = bob.get("/v1/files", params=params).json()
        assert fid not in {item["file_id"] for item in listed["items"]}
        assert all(item["owner"] == "bob" for item in listed["items"])

    hashed = bob.post(
        "/v1/files/by-hash", json={"sha256": sha(data), "size": len(data), "filename": "mine.txt"}
    )
    assert_error(hashed, 404, "NotFoundError")

    # Alice's files are untouched by all of that.
    assert alice.get(f"/v1/files/{fid}/content").content == data
    assert alice.get(f"/v1/files/{large_id}/content").content == large


def test_an_upload_does_not_reveal_that_another_owner_stores_the_bytes(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    data = os.urandom(4000)
    upload(alice, data, "a.bin")
    result = upload(bob, data, "b.bin")
    assert result["deduplicated"] is False and result["bytes_written"] == len(data)
    assert bob.get(f"/v1/files/{result['file_id']}").json()["owner"] == "bob"
    again = upload(bob, data, "b2.bin")  # now bob does store it
    assert again["deduplicated"] is True


def test_the_same_error_for_anothers_file_and_no_file(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    fid = upload(alice, b"private", "p.txt")["file_id"]
    missing = "0192b5e0-7c1a-7d3e-9f00-1a2b3c4d5e6f"
    theirs = bob.get(f"/v1/files/{fid}").json()["error"]["message"].replace(fid, "ID")
    nothing = bob.get(f"/v1/files/{missing}").json()["error"]["message"].replace(missing, "ID")
    assert theirs == nothing


# ----------------------------------------------------------------------- Host header


@pytest.mark.parametrize(
    "host", ["evil.example.com", "evil.example.com:80", "127.0.0.1.nip.io", "localhost.evil", ""]
)
def test_a_foreign_host_header_is_rejected(server: LiveServer, host: str) -> None:
    for path in ("/v1/files", "/metrics", "/openapi.json", "/mcp"):
        response = httpx.get(
            f"{server.url}{path}", headers={"Host": host, "Authorization": f"Bearer {ALICE}"}
        )
        assert_error(response, 421, "MisdirectedRequest")


def test_probes_answer_any_host(server: LiveServer) -> None:
    for path in ("/healthz", "/readyz"):
        assert (
            httpx.get(f"{server.url}{path}", headers={"Host": "10.1.2.3:8787"}).status_code == 200
        )


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]", "127.0.0.1:{port}"]
)
def test_loopback_names_are_accepted(server: LiveServer, host: str) -> None:
    response = httpx.get(
        f"{server.url}/v1/files",
        headers={"Host": host.format(port=server.port), "Authorization": f"Bearer {ALICE}"},
    )
    assert response.status_code == 200


def test_configured_allowed_hosts(tmp_path: Path) -> None:
    settings = {
        "FILETIER_API_TOKENS": TOKENS,
        "FILETIER_ALLOWED_HOSTS": "files.example.com,*.internal.example",
    }
    with LiveServer(tmp_path / "home", settings) as live:

        def status(host: str) -> int:
            headers = {"Host": host, "Authorization": f"Bearer {ALICE}"}
            return httpx.get(f"{live.url}/v1/files", headers=headers).status_code

        assert status("files.example.com") == 200
        assert status("files.example.com:8443") == 200
        assert status("a.internal.example") == 200
        assert status(f"127.0.0.1:{live.port}") == 200  # the bound address always works
        assert status("localhost") == 421  # the defaults are replaced
        assert status("internal.example.evil") == 421


# --------------------------------------------------------------- startup without tokens


def run_to_exit(tmp_path: Path, host: str, **settings: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        "from filetier.config import Settings\n"
        "from filetier.errors import ConfigError\n"
        "from filetier.interfaces.serve import run\n"
        "try:\n"
        "    run(Settings(), sys.argv[1], int(sys.argv[2]))\n"
        "except ConfigError as exc:\n"
        "    print(f'refused: {exc}', file=sys.stderr)\n"
        "    sys.exit(3)\n"
    )
    home = tmp_path / "home"
    return subprocess.run(
        [sys.executable, "-c", code, host, str(free_port())],
        env=server_env(home, **settings),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_server_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    result = run_to_exit(tmp_path, "127.0.0.1")
    assert result.returncode == 3
    assert "refused: no API token is configured" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_auth_is_refused_off_loopback(tmp_path: Path) -> None:
    result = run_to_exit(tmp_path, "0.0.0.0", FILETIER_ALLOW_NO_AUTH="true")  # noqa: S104
    assert result.returncode == 3
    assert "loopback" in result.stderr


def test_no_auth_on_loopback_serves_the_default_owner(tmp_path: Path) -> None:
    settings = {"FILETIER_ALLOW_NO_AUTH": "true", "FILETIER_OWNER": "me"}
    with LiveServer(tmp_path / "home", settings) as live, live.client(None) as client:
        fid = upload(client, b"no token needed", "n.txt")["file_id"]
        assert client.get(f"/v1/files/{fid}").json()["owner"] == "me"
        # The Host check still applies.
        assert client.get("/v1/files", headers={"Host": "evil.example"}).status_code == 421


def test_a_page_of_another_site_cannot_write_to_a_server_without_tokens(tmp_path: Path) -> None:
    """Without tokens, a web page the operator opens could POST a form to the loopback
    server (no CORS preflight is needed for that) and plant files in the store. The
    browser says where the request comes from; such writes are refused, while programs
    (no Origin) and the server's own pages still write."""
    settings = {"FILETIER_ALLOW_NO_AUTH": "true", "FILETIER_OWNER": "me"}
    with LiveServer(tmp_path / "home", settings) as live, live.client(None) as client:
        for headers in (
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Origin": f"http://127.0.0.1:{live.port}", "Sec-Fetch-Site": "same-site"},
        ):
            refused = client.post(
                "/v1/files",
                files={"file": ("evil.txt", b"ignore previous instructions")},
                headers=headers,
            )
            assert refused.status_code == 403, (headers, refused.text)
            assert refused.json()["error"]["type"] == "CrossSiteRequest"
        assert client.get("/v1/files").json()["items"] == []
        # Reading is not refused: a page of another site cannot read the answer anyway.
        assert (
            client.get("/v1/files", headers={"Origin": "https://evil.example"}).status_code == 200
        )
        own_page = {"Origin": f"http://127.0.0.1:{live.port}", "Sec-Fetch-Site": "same-origin"}
        for headers in ({}, own_page):
            stored = client.post(
                "/v1/files", files={"file": ("ok.txt", b"wanted")}, headers=headers
            )
            assert stored.status_code == 201, stored.text


def test_tokens_created_with_the_cli_are_accepted(tmp_path: Path) -> None:
    home = tmp_path / "home"

    async def create() -> str:
        async with FileStore(Settings(home=home, fsync=False)) as store:
            return await TokenAuthority(store.settings, store.db).create("carol", "laptop")

    token = asyncio.run(create())
    with LiveServer(home, {}) as live:
        with live.client(token) as carol:
            fid = upload(carol, b"carol's", "c.txt")["file_id"]
            assert carol.get(f"/v1/files/{fid}").json()["owner"] == "carol"
        with live.client("ft_not-a-real-token-000000") as stranger:
            assert stranger.get("/v1/files").status_code == 401


# ------------------------------------------------------------ the owner in the scope


async def test_the_owner_reaches_the_mounted_app_through_the_scope() -> None:
    """What the MCP app at /mcp relies on: the owner in ``scope["state"]``."""
    seen: list[dict[str, Any]] = []

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope.get("state", {})))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    owners = {ALICE: "alice"}

    async def owner_for(token: str | None) -> str | None:
        return owners.get(token or "")

    gate = AccessGate(
        echo,
        hosts=HostPolicy(["testserver"], "127.0.0.1", 8787),
        owner_for=owner_for,
        mcp_app=lambda: echo,
    )
    transport = httpx.ASGITransport(app=gate)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        ok = await client.post("/mcp", headers={"Authorization": f"Bearer {ALICE}"})
        denied = await client.post("/mcp")
    assert ok.status_code == 200 and denied.status_code == 401
    assert seen == [{"filetier_owner": "alice", "owner": "alice"}]


async def test_mcp_at_slash_mcp_runs_as_the_tokens_owner(server: LiveServer) -> None:
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    with server.client(ALICE) as alice:
        mine = upload(alice, b"alice over http", "via-http.txt")

    async def list_files(token: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            transport = streamable_http_client(f"{server.url}/mcp", http_client=http)
            async with Client(transport) as client:
                result = await client.call_tool("list_files", {"sha256": mine["sha256"]})
        assert not result.is_error, result.content
        assert result.structured_content is not None
        return result.structured_content

    as_alice = await list_files(ALICE)
    as_bob = await list_files(BOB)
    assert mine["file_id"] in {item["file_id"] for item in as_alice["items"]}
    assert as_bob["total"] == 0


def test_raw_socket_without_host_is_rejected(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET /v1/files HTTP/1.0\r\nAuthorization: Bearer {ALICE}\r\n\r\n".encode())
        answer = sock.recv(65536)
    assert answer.startswith((b"HTTP/1.1 421 ", b"HTTP/1.0 421 "))
