"""A primary store backed by any ``obstore`` store: memory, a local or mounted directory
(``file://``, e.g. an NFS share kept behind a disk cache), or S3-compatible buckets.

This is the one place obstore's exceptions are translated into filetier's.
"""

from __future__ import annotations

import asyncio
import contextlib
import stat
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import obstore
import stamina
from obstore.exceptions import AlreadyExistsError, BaseError, NotSupportedError
from obstore.exceptions import NotFoundError as ObstoreNotFound

from filetier.errors import ObjectMissing, StorageRefusedError, StorageUnavailableError
from filetier.tiers.durability import fsync_path, in_parallel
from filetier.tiers.local import check_key
from filetier.tiers.protocols import ObjectInfo

if TYPE_CHECKING:
    from obstore.store import ObjectStore

# Objects up to this size are written with a conditional single PUT (put-if-absent);
# larger ones go multipart after a HEAD, where overwriting identical content is harmless.
SINGLE_PUT_MAX = 64 * 1024 * 1024


# S3 error codes that mean the configuration, not the network, is wrong: no retry helps.
_REFUSALS = (
    ("NoSuchBucket", "the bucket does not exist: create it or fix FILETIER_S3_BUCKET"),
    ("InvalidAccessKeyId", "the access key is not known to the server: check the S3 keys"),
    ("SignatureDoesNotMatch", "the secret key is wrong: check FILETIER_S3_SECRET_ACCESS_KEY"),
    ("AccessDenied", "the credentials may not use this bucket: check its policy"),
    ("PermissionDenied", "the credentials may not use this bucket: check its policy"),
    ("Unauthenticated", "the server refused the credentials: check the S3 keys"),
    (
        "UNSIGNED-PAYLOAD",
        "the server refuses unsigned request bodies: set FILETIER_S3_SIGN_PAYLOAD=always",
    ),
)
# Failures worth retrying, with what they usually mean.
_OUTAGES = (
    ("error sending request", "the endpoint did not answer: is it running and reachable?"),
    ("timed out", "the request timed out: the store is down or slow"),
)


def _unavailable(
    action: str, key: str, exc: BaseException, refusals: tuple[tuple[str, str], ...] = ()
) -> StorageUnavailableError:
    # obstore messages carry request URLs and server bodies but never credentials; keep
    # only the class name and a hint, so nothing about the deployment leaks further.
    text = str(exc)
    refusal = next((h for needle, h in (*refusals, *_REFUSALS) if needle in text), None)
    hint = refusal or next((h for needle, h in _OUTAGES if needle in text), None)
    kind = StorageRefusedError if refusal else StorageUnavailableError
    return kind(
        f"storage unavailable: could not {action} {key} ({type(exc).__name__}"
        + (f": {hint})" if hint else ")")
    )


def _worth_retrying(exc: Exception) -> bool:
    return isinstance(exc, StorageUnavailableError) and not isinstance(exc, StorageRefusedError)


class ObstorePrimary:
    """Primary store over an obstore ``ObjectStore``."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        name: str,
        retry_attempts: int = 1,
        retry_timeout: float = 30.0,
        write_store: ObjectStore | None = None,
        conditional_writes: bool = True,
        refusals: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._store = store
        # Writes are retried by the stamina loop below; a store without retries of its
        # own keeps "N attempts" meaning N requests, not N times obstore's.
        self._write_store = write_store or store
        self._name = name
        self._retry_attempts = max(1, retry_attempts)
        self._retry_timeout = retry_timeout
        # False for servers known to accept If-None-Match and overwrite anyway (Supabase
        # Storage): they get head-then-put. That is as safe as put-if-absent only because
        # every write of a key happens under its content lock (writing.Writer._commit) or
        # from a copy verified against the key's hash, so an overwrite puts back the same
        # bytes.
        self._conditional_put = conditional_writes
        # Server-specific (needle, hint) pairs checked before the generic S3 ones, so a
        # refusal names the settings this deployment actually uses.
        self._refusals = refusals

    @property
    def name(self) -> str:
        return self._name

    @property
    def puts_if_absent(self) -> bool:
        """Whether a put is conditional (If-None-Match), so it never replaces an object."""
        return self._conditional_put

    def _unavailable(self, action: str, key: str, exc: BaseException) -> StorageUnavailableError:
        return _unavailable(action, key, exc, self._refusals)

    async def sign_get(self, key: str, expires_in: timedelta) -> str | None:
        """A pre-signed GET URL for ``key`` (S3, GCS, Azure), or None where the store
        cannot sign (a local directory, memory)."""
        from obstore.store import AzureStore, GCSStore, S3Store

        if not isinstance(self._store, S3Store | GCSStore | AzureStore):
            return None
        try:
            return await obstore.sign_async(self._store, "GET", check_key(key), expires_in)
        except (BaseError, OSError) as exc:
            raise self._unavailable("sign a URL for", key, exc) from exc

    async def head(self, key: str) -> ObjectInfo | None:
        try:
            try:
                meta = await obstore.head_async(self._store, check_key(key))
            except BaseError as exc:
                if "MissingContentLength" not in str(exc):
                    raise
                # Supabase Storage answers HEAD of an empty object without Content-Length,
                # which obstore refuses; a GET of it says the same in its headers (and
                # its body, left unread, is empty).
                meta = (await obstore.get_async(self._store, key)).meta
        except (ObstoreNotFound, FileNotFoundError):
            return None
        except (BaseError, OSError) as exc:
            raise self._unavailable("read", key, exc) from exc
        return ObjectInfo(key, meta["size"], meta["last_modified"])

    async def get_stream(
        self, key: str, chunk_size: int = 4 * 1024 * 1024
    ) -> AsyncIterator[bytes | memoryview]:
        try:
            result = await obstore.get_async(self._store, check_key(key))
            async for chunk in result.stream(min_chunk_size=chunk_size):
                # A view of obstore's buffer: hashing and writing it needs no copy.
                yield memoryview(chunk)
        except (ObstoreNotFound, FileNotFoundError):
            raise ObjectMissing(f"no object {key}") from None
        except (BaseError, OSError) as exc:
            raise self._unavailable("read", key, exc) from exc

    async def put_file(self, key: str, source: Path) -> bool:
        """Put-if-absent, retried with exponential backoff and jitter when the store fails;
        the whole object is re-sent from ``source`` on each attempt."""
        return await self._put(key, source)

    async def put_bytes(self, key: str, data: bytes) -> bool:
        """:meth:`put_file` of bytes already in memory: one request, no file read."""
        return await self._put(key, data)

    async def _put(self, key: str, source: Path | bytes) -> bool:
        check_key(key)
        # The first attempt goes without the retry machinery: most puts need no retry.
        try:
            return await self._put_once(key, source)
        except StorageUnavailableError as exc:
            if self._retry_attempts <= 1 or not _worth_retrying(exc):
                raise
        await asyncio.sleep(0.2)  # the backoff stamina would have waited before a retry
        async for attempt in stamina.retry_context(
            on=_worth_retrying,
            attempts=self._retry_attempts - 1,
            timeout=self._retry_timeout,
            wait_initial=0.2,
            wait_max=5.0,
            wait_jitter=0.5,
        ):
            with attempt:
                return await self._put_once(key, source)
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    async def _put_once(self, key: str, source: Path | bytes) -> bool:
        try:
            size = len(source) if isinstance(source, bytes) else source.stat().st_size
            if self._conditional_put and size <= SINGLE_PUT_MAX:
                try:
                    await obstore.put_async(self._write_store, key, source, mode="create")
                except AlreadyExistsError:
                    return False
                except NotSupportedError:
                    # The server ignores If-None-Match; from now on head, then put:
                    # overwriting identical content-addressed bytes is harmless.
                    self._conditional_put = False
                else:
                    return True
            if await self.head(key) is not None:
                return False
            await obstore.put_async(self._write_store, key, source)
        except StorageUnavailableError:
            raise  # from head(): translated already
        except (BaseError, OSError) as exc:
            raise self._unavailable("write", key, exc) from exc
        return True

    async def delete(self, key: str) -> None:
        try:
            await obstore.delete_async(self._store, check_key(key))
        except (ObstoreNotFound, FileNotFoundError):
            return
        except (BaseError, OSError) as exc:
            raise self._unavailable("delete", key, exc) from exc

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        try:
            async for batch in obstore.list(self._store, prefix or None):
                for meta in batch:
                    path = meta["path"]
                    if path.startswith("quarantine/"):
                        continue
                    yield ObjectInfo(path, meta["size"], meta["last_modified"])
        except (BaseError, OSError) as exc:
            raise self._unavailable("list", prefix or "/", exc) from exc

    async def quarantine(self, key: str) -> str | None:
        target = f"quarantine/{key.replace('/', '_')}.{time.time_ns()}"
        try:
            await obstore.copy_async(self._store, check_key(key), target)
        except (ObstoreNotFound, FileNotFoundError):
            return None
        except (BaseError, OSError) as exc:
            raise self._unavailable("quarantine", key, exc) from exc
        await self.delete(key)
        return target

    async def close(self) -> None:
        return None


class ObstoreLocalPrimary(ObstorePrimary):
    """A ``file://`` directory through obstore's LocalStore.

    LocalStore writes each object to ``<key>#<n>`` and renames it into place; a process
    killed mid-write leaves that partial file, which listings do not show.
    :meth:`partial_uploads` finds them so ``gc`` can remove them after the grace window.
    """

    def __init__(self, store: ObjectStore, *, root: Path, **kwargs: Any) -> None:
        super().__init__(store, **kwargs)
        self.root = root

    async def partial_uploads(self) -> list[ObjectInfo]:
        found: list[ObjectInfo] = []
        for path in self.root.rglob("*#*"):
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                if stat.S_ISREG(st.st_mode):
                    found.append(
                        ObjectInfo(
                            path.relative_to(self.root).as_posix(),
                            st.st_size,
                            datetime.fromtimestamp(st.st_mtime, UTC),
                        )
                    )
        return found

    def make_durable(self, keys: Sequence[str]) -> list[OSError | None]:
        """Make published objects survive a power cut (blocking; fsync on): each object,
        and every directory from its own up to the root (LocalStore makes them as it
        needs them and syncs none), so that a committed row never names an object a power
        cut could take away (:class:`filetier.metadata.inserts.DurableObjects`)."""
        return in_parallel(self._make_one_durable, list(keys))

    def _make_one_durable(self, key: str) -> OSError | None:
        try:
            path = self.root / key
            fsync_path(path)
            directory = path.parent
            while True:
                fsync_path(directory)
                if directory == self.root or self.root not in directory.parents:
                    break
                directory = directory.parent
        except OSError as exc:
            return exc
        return None

    async def remove_partial(self, key: str) -> None:
        if "#" not in key:
            raise ValueError(f"not a partial upload: {key!r}")
        (self.root / key).unlink(missing_ok=True)
