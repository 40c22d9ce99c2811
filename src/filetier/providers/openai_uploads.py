"""OpenAI's multipart Uploads API, for files over the 512 MB the files endpoint takes.

``POST /v1/uploads`` opens an Upload (up to 8 GB, alive for an hour), ``POST
/v1/uploads/{id}/parts`` adds parts of at most 64 MB in any order, ``POST .../complete``
names the parts in order and makes the File, ``POST .../cancel`` abandons it.

The stored file is read once, in order, by one reader that hashes as it reads; parts
go out from a bounded queue to ``parallel`` senders. Memory holds at most
``2 * parallel + 1`` parts at a time, whatever the file's size. A part that fails is
retried by ``call`` (bounded, ``Retry-After`` honoured) without resending the parts that
made it; when a part fails for good, or the bytes read do not hash to the content's
SHA-256, the Upload is cancelled so nothing half-made is left, and the error is raised.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO, TypeVar

import openai

from filetier.errors import FiletierError, IntegrityError
from filetier.providers.base import LocalContent, MultipartPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")
Call = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]
MAX_PART_BYTES = 64 * 1024 * 1024


async def multipart_upload(
    client: openai.AsyncOpenAI,
    call: Call,
    content: LocalContent,
    purpose: str,
    policy: MultipartPolicy,
    expires_after: dict[str, Any] | None,
) -> Any:
    """Send ``content`` as one Upload and return the File it made."""
    part_bytes = min(policy.part_bytes, MAX_PART_BYTES)
    extra: dict[str, Any] = {"expires_after": expires_after} if expires_after else {}
    upload = await call(
        "start a multipart upload",
        lambda: client.uploads.create(
            bytes=content.size,
            filename=content.filename,
            mime_type=content.mime_type,
            purpose=purpose,  # type: ignore[arg-type]
            **extra,
        ),
    )
    try:
        part_ids = await _send_parts(client, call, content, upload.id, part_bytes, policy.parallel)
        done = await call(
            "complete a multipart upload",
            lambda: client.uploads.complete(upload.id, part_ids=part_ids),
        )
    except BaseException:
        await asyncio.shield(_cancel_quietly(client, call, upload.id))
        raise
    if done.file is None:
        raise IntegrityError(f"upload {upload.id} completed without a file")
    return done.file


async def _send_parts(
    client: openai.AsyncOpenAI,
    call: Call,
    content: LocalContent,
    upload_id: str,
    part_bytes: int,
    parallel: int,
) -> list[str]:
    count = max(1, -(-content.size // part_bytes))
    part_ids: list[str | None] = [None] * count
    queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(maxsize=parallel)
    digest = hashlib.sha256()

    def read_part(source: BinaryIO) -> bytes:
        chunk = source.read(part_bytes)
        digest.update(chunk)  # hashlib releases the GIL on large buffers
        return chunk

    async def read() -> None:
        with content.path.open("rb") as source:
            for index in range(count):
                await queue.put((index, await asyncio.to_thread(read_part, source)))
        for _ in range(parallel):
            await queue.put(None)

    async def send() -> None:
        while (item := await queue.get()) is not None:
            index, chunk = item

            def one(chunk: bytes = chunk) -> Awaitable[Any]:
                return client.uploads.parts.create(upload_id, data=chunk)

            part = await call(f"send part {index + 1} of {count}", one)
            part_ids[index] = part.id

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(read())
            for _ in range(parallel):
                group.create_task(send())
    except BaseExceptionGroup as group_error:
        # Raise the first real failure (a ProviderError, an OSError reading the file)
        # rather than the group: callers map single errors to interfaces.
        first = _first(group_error)
        raise first from None
    if digest.hexdigest() != content.sha256:
        raise IntegrityError(
            f"{content.filename} changed on disk while it was sent (its SHA-256 no longer "
            "matches); the upload was cancelled, try again"
        )
    if any(p is None for p in part_ids):  # pragma: no cover - every part is sent or raises
        raise IntegrityError("a part of the upload was never sent")
    return [p for p in part_ids if p is not None]


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]


async def _cancel_quietly(client: openai.AsyncOpenAI, call: Call, upload_id: str) -> None:
    try:
        await call("cancel a multipart upload", lambda: client.uploads.cancel(upload_id))
    except FiletierError as exc:
        # The provider drops an Upload it never saw completed after an hour anyway.
        log.warning("could not cancel upload %s: %s", upload_id, exc)
