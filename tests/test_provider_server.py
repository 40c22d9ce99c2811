"""The loopback provider speaks the files/chat wire protocol the real ``openai`` SDK expects."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from testbed.provider_server import ProviderControl, ProviderServer

KEY = "sk-test-provider"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def running() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def server(running: ProviderServer) -> ProviderServer:
    running.reset()
    return running


@pytest.fixture
async def client(server: ProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(api_key=KEY, base_url=server.base_url, max_retries=0) as opened:
        yield opened


@pytest.fixture
def sync_client(server: ProviderServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0) as opened:
        yield opened


async def test_files_round_trip_async(server: ProviderServer, client: openai.AsyncOpenAI) -> None:
    created = await client.files.create(file=("a.txt", b"hello"), purpose="file-extract")
    assert re.fullmatch(r"file-[0-9a-f]{24}", created.id)
    assert (created.object, created.bytes, created.filename) == ("file", 5, "a.txt")
    assert (created.purpose, created.status) == ("file-extract", "ok")
    assert abs(created.created_at - time.time()) < 60

    listed = await client.files.list()
    assert [f.id for f in listed.data] == [created.id]
    assert listed.has_more is False

    retrieved = await client.files.retrieve(created.id)
    assert retrieved.model_dump() == created.model_dump()

    content = await client.files.content(created.id)
    assert json.loads(content.text) == {
        "content": "hello",
        "file_type": "text/plain",
        "filename": "a.txt",
        "title": "",
        "type": "file",
    }

    deleted = await client.files.delete(created.id)
    assert (deleted.id, deleted.deleted) == (created.id, True)
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve(created.id)
    assert server.files == {}


def test_files_and_chat_sync(server: ProviderServer, sync_client: openai.OpenAI) -> None:
    created = sync_client.files.create(file=("notes.md", b"# title\nbody"), purpose="file-extract")
    assert [f.id for f in sync_client.files.list()] == [created.id]
    assert sync_client.files.retrieve(created.id).bytes == 12
    assert json.loads(sync_client.files.content(created.id).text)["content"] == "# title\nbody"

    reply = sync_client.chat.completions.create(
        model="moonshot-v1-8k",
        messages=[
            {"role": "system", "content": "You are Kimi."},
            {"role": "system", "content": "# title\nbody"},
            {"role": "user", "content": "summarize the notes"},
        ],
    )
    assert reply.object == "chat.completion"
    assert reply.model == "moonshot-v1-8k"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.role == "assistant"
    assert (
        reply.choices[0].message.content == "answer to summarize the notes using 2 system messages"
    )
    assert reply.usage is not None
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert sync_client.files.delete(created.id).deleted is True


async def test_chat_records_bodies_and_streams(
    server: ProviderServer, client: openai.AsyncOpenAI
) -> None:
    messages: list[dict[str, object]] = [
        {"role": "system", "content": "file text"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    reply = await client.chat.completions.create(model="glm-4", messages=messages)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "answer to second using 1 system messages"

    stream = await client.chat.completions.create(
        model="glm-4", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    pieces = [chunk.choices[0].delta.content async for chunk in stream if chunk.choices]
    assert "".join(p for p in pieces if p) == "answer to hi using 0 system messages"

    bodies = server.chat_requests
    assert [b["model"] for b in bodies] == ["glm-4", "glm-4"]
    assert bodies[0]["messages"] == messages
    assert bodies[1]["stream"] is True


async def test_wrong_key_is_401(server: ProviderServer) -> None:
    async with openai.AsyncOpenAI(
        api_key="sk-wrong", base_url=server.base_url, max_retries=0
    ) as wrong:
        with pytest.raises(openai.AuthenticationError) as caught:
            await wrong.files.list()
    assert caught.value.status_code == 401
    assert caught.value.body == {
        "message": "Invalid Authentication",
        "type": "invalid_authentication_error",
    }
    async with httpx.AsyncClient() as raw:
        assert (await raw.get(f"{server.base_url}/files")).status_code == 401
    assert server.requests == [("GET", "/v1/files", 401)] * 2


async def test_unknown_id_is_404(server: ProviderServer, client: openai.AsyncOpenAI) -> None:
    missing = "file-000000000000000000000000"
    for call in (client.files.retrieve, client.files.content, client.files.delete):
        with pytest.raises(openai.NotFoundError) as caught:
            await call(missing)
        assert caught.value.code == "file_not_found"
        assert caught.value.body == {
            "message": "file not found",
            "type": "resource_not_found_error",
            "code": "file_not_found",
        }


async def test_rate_limit_with_retry_after(
    server: ProviderServer, client: openai.AsyncOpenAI
) -> None:
    server.fail_next(status=429, retry_after=1)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.files.create(file=("a.txt", b"x"), purpose="file-extract")
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.body == {
        "message": "rate limit reached",
        "type": "rate_limit_reached_error",
    }
    assert server.upload_count == 0
    # Consumed: the next request goes through.
    await client.files.create(file=("a.txt", b"x"), purpose="file-extract")
    assert server.upload_count == 1
    assert [status for _, _, status in server.requests] == [429, 200]


async def test_server_errors_count_and_path_filter(
    server: ProviderServer, client: openai.AsyncOpenAI
) -> None:
    server.fail_next(count=2, status=500, path_contains="/content")
    server.fail_next(status=503, retry_after=0.5, method="DELETE")
    created = await client.files.create(file=("a.txt", b"x"), purpose="file-extract")
    await client.files.list()  # not matched
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as caught:
            await client.files.content(created.id)
        assert caught.value.status_code == 500
        assert caught.value.type == "server_error"
    assert json.loads((await client.files.content(created.id)).text)["content"] == "x"
    with pytest.raises(openai.InternalServerError) as caught:
        await client.files.delete(created.id)
    assert caught.value.status_code == 503
    assert caught.value.response.headers["retry-after"] == "0.5"
    assert created.id in server.files  # the failed delete did nothing


async def test_purpose_size_and_quotas(server: ProviderServer, client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="invalid purpose"):
        await client.files.create(file=("a.txt", b"x"), purpose="fine-tune")

    server.configure(max_file_bytes=10, max_files=2, max_total_bytes=15)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.files.create(file=("big.txt", b"x" * 11), purpose="file-extract")
    assert "exceeded" in caught.value.message
    assert "too large" in caught.value.message
    assert caught.value.type == "invalid_request_error"

    await client.files.create(file=("a.txt", b"x" * 10), purpose="file-extract")
    with pytest.raises(openai.BadRequestError, match=r"storage quota exceeded.*15 bytes") as caught:
        await client.files.create(file=("b.txt", b"x" * 6), purpose="file-extract")
    assert "too large" not in caught.value.message
    assert "file size" not in caught.value.message
    await client.files.create(file=("b.txt", b"x" * 5), purpose="file-extract")
    with pytest.raises(openai.BadRequestError, match=r"file count exceeded.*2 files"):
        await client.files.create(file=("c.txt", b""), purpose="file-extract")
    assert server.upload_count == 2
    assert sorted(f["bytes"] for f in server.files.values()) == [5, 10]


async def test_slow_response_times_out(server: ProviderServer, client: openai.AsyncOpenAI) -> None:
    created = await client.files.create(file=("a.txt", b"x"), purpose="file-extract")
    server.set_delay(1.5, path_contains="/content", count=1)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await client.files.content(created.id, timeout=0.5)
    assert time.monotonic() - started < 1.4
    # The delay was for one request only, and other paths were never slowed.
    await client.files.retrieve(created.id, timeout=0.5)
    assert json.loads((await client.files.content(created.id, timeout=0.5)).text)["content"] == "x"

    server.delay_seconds = 0.2
    assert server.delay_seconds == 0.2
    started = time.monotonic()
    await client.files.list(timeout=5)
    assert time.monotonic() - started >= 0.2
    server.delay_seconds = 0
    assert server.delay_seconds == 0


async def test_forget_simulates_provider_side_deletion(
    server: ProviderServer, client: openai.AsyncOpenAI
) -> None:
    created = await client.files.create(file=("a.txt", b"x"), purpose="file-extract")
    assert server.forget(created.id) is True
    assert server.forget(created.id) is False
    with pytest.raises(openai.NotFoundError):
        await client.files.content(created.id)
    with pytest.raises(openai.NotFoundError):
        await client.files.delete(created.id)
    assert (await client.files.list()).data == []


async def test_counters(server: ProviderServer, client: openai.AsyncOpenAI) -> None:
    a = await client.files.create(file=("a.txt", b"a"), purpose="file-extract")
    await client.files.create(file=("b.png", b"b"), purpose="image")
    await client.files.content(a.id)
    await client.files.delete(a.id)
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve(a.id)

    assert server.upload_count == 2
    assert server.request_count() == 5
    assert server.request_count("POST", "/files") == 2
    assert server.request_count("GET", "/v1/files/") == 2
    assert server.request_count("get", "/files") == 2
    assert server.request_count(path_prefix=f"/files/{a.id}/content") == 1
    assert server.requests[-2:] == [
        ("DELETE", f"/v1/files/{a.id}", 200),
        ("GET", f"/v1/files/{a.id}", 404),
    ]
    assert [f["filename"] for f in server.files.values()] == ["b.png"]
    assert server.file_bytes(next(iter(server.files))) == b"b"
    assert server.stats()["upload_count"] == 2


async def test_binary_bytes_and_unicode_filename(
    server: ProviderServer, client: openai.AsyncOpenAI
) -> None:
    data = bytes(range(256)) + b"\r\n--not-a-boundary\r\n" + "naïve".encode()
    created = await client.files.create(file=('报告 "q".txt', data), purpose="file-extract")
    assert created.filename == '报告 "q".txt'
    assert server.file_bytes(created.id) == data
    text = json.loads((await client.files.content(created.id)).text)["content"]
    assert text == data.decode("utf-8", errors="replace")
    assert text.endswith("naïve")


async def test_content_refused_when_provider_does_not_return_files(
    server: ProviderServer, client: openai.AsyncOpenAI
) -> None:
    server.configure(returns_content=False)
    created = await client.files.create(file=("a.txt", b"x"), purpose="file-extract")
    with pytest.raises(openai.BadRequestError, match="Not allowed to download"):
        await client.files.content(created.id)
    server.reset()  # back to the constructor's configuration
    created = await client.files.create(file=("a.txt", b"x"), purpose="file-extract")
    assert json.loads((await client.files.content(created.id)).text)["content"] == "x"


async def test_seeded_files_are_provider_only(
    server: ProviderServer, client: openai.AsyncOpenAI
) -> None:
    seeded = server.seed_file("scan.pdf", b"%PDF-1.7 ...", text="extracted words")
    content = json.loads((await client.files.content(seeded["id"])).text)
    assert content == {
        "content": "extracted words",
        "file_type": "application/pdf",
        "filename": "scan.pdf",
        "title": "",
        "type": "file",
    }
    assert server.upload_count == 0


async def test_concurrent_uploads_respect_the_quota(
    server: ProviderServer, client: openai.AsyncOpenAI
) -> None:
    server.configure(max_files=10)

    async def upload(i: int) -> str | None:
        try:
            created = await client.files.create(
                file=(f"{i}.txt", b"%d" % i), purpose="file-extract"
            )
        except openai.BadRequestError:
            return None
        return created.id

    ids = await asyncio.gather(*(upload(i) for i in range(25)))
    accepted = [i for i in ids if i is not None]
    assert len(accepted) == len(set(accepted)) == 10
    assert server.upload_count == 10
    assert set(server.files) == set(accepted)
    assert server.request_count("POST", "/files") == 25


async def test_control_endpoints_over_http(
    server: ProviderServer, client: openai.AsyncOpenAI
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post(
            "/_control/fail_next", json={"status": 429, "retry_after": 2, "path_contains": "/files"}
        )
        assert response.status_code == 200
        with pytest.raises(openai.RateLimitError) as caught:
            await client.files.list()
        assert caught.value.response.headers["retry-after"] == "2"

        created = await client.files.create(file=("a.txt", b"hi"), purpose="file-extract")
        stats = (await http.get("/_control/stats")).json()
        assert stats["upload_count"] == 1
        assert stats["request_count"] == 2
        assert stats["requests"] == [["GET", "/v1/files", 429], ["POST", "/v1/files", 200]]
        assert list(stats["files"]) == [created.id]
        count = await http.get(
            "/_control/request_count", params={"method": "POST", "path_prefix": "/files"}
        )
        assert count.json() == {"count": 1}
        raw = await http.get(f"/_control/files/{created.id}/bytes")
        assert raw.content == b"hi"

        forgotten = await http.post("/_control/forget", json={"file_id": created.id})
        assert forgotten.json() == {"forgotten": True}
        with pytest.raises(openai.NotFoundError):
            await client.files.retrieve(created.id)

        configured = await http.post("/_control/configure", json={"max_file_bytes": 1})
        assert configured.json()["max_file_bytes"] == 1
        with pytest.raises(openai.BadRequestError, match="too large"):
            await client.files.create(file=("a.txt", b"hi"), purpose="file-extract")

        await http.post("/_control/delay", json={"seconds": 2, "path_contains": "/files"})
        with pytest.raises(openai.APITimeoutError):
            await client.files.list(timeout=0.3)

        assert (await http.post("/_control/reset")).status_code == 200
        assert server.request_count() == 0
        assert server.files == {}
        bad = await http.post("/_control/fail_next", json={"status": 200})
        assert bad.status_code == 400
        assert "status" in bad.json()["error"]["message"]
    # The control API is not part of the provider's log.
    assert server.requests == []


def test_control_from_another_process(server: ProviderServer, sync_client: openai.OpenAI) -> None:
    created = sync_client.files.create(file=("a.txt", b"hello"), purpose="file-extract")
    code = (
        "import sys\n"
        "from testbed.provider_server import ProviderControl\n"
        "with ProviderControl(sys.argv[1]) as control:\n"
        "    assert control.request_count('POST', '/files') == 1\n"
        "    assert control.file_bytes(sys.argv[2]) == b'hello'\n"
        "    control.fail_next(status=500, path_contains='/content')\n"
        "    assert control.forget(sys.argv[2])\n"
        "    print(control.stats()['upload_count'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code, server.base_url, created.id],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    with pytest.raises(openai.InternalServerError):
        sync_client.files.content(created.id)
    with pytest.raises(openai.NotFoundError):
        sync_client.files.content(created.id)


def test_provider_control_in_process(server: ProviderServer, sync_client: openai.OpenAI) -> None:
    with ProviderControl(server.control_url) as control:
        seeded = control.seed_file("x.txt", b"seeded")
        assert sync_client.files.retrieve(seeded["id"]).bytes == 6
        control.configure(allowed_purposes=["batch"])
        with pytest.raises(openai.BadRequestError, match="invalid purpose"):
            sync_client.files.create(file=("a.txt", b"x"), purpose="file-extract")
        control.set_delay(0.1, method="GET", count=1)
        started = time.monotonic()
        sync_client.files.list()
        assert time.monotonic() - started >= 0.1
        control.reset()
        assert control.stats()["files"] == {}


def test_lifecycle() -> None:
    server = ProviderServer(api_key=KEY, returns_content=False)
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with server:
        assert server.running
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", server.base_url)
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
        # A request left sleeping in a delay does not hold up stop().
        server.delay_seconds = 30
        with (
            openai.OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0) as client,
            pytest.raises(openai.APITimeoutError),
        ):
            client.files.list(timeout=0.2)
        started = time.monotonic()
    assert time.monotonic() - started < 2
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.base_url + "/files", timeout=1)
    # And it can be started again, with its state intact.
    server.delay_seconds = 0
    with server:
        assert server.request_count() == 0
        with openai.OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0) as client:
            created = client.files.create(file=("a.txt", b"x"), purpose="file-extract")
            with pytest.raises(openai.BadRequestError):
                client.files.content(created.id)
