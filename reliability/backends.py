"""The store under test, seen from outside: how to configure it and how to look inside.

A :class:`StoreUnderTest` is one filetier deployment in a scratch directory:

- ``embedded``: SQLite and the local primary in ``home`` (the default install);
- ``production``: a fresh PostgreSQL database on the machine's server and a new bucket on
  Ceph RGW, or on a moto server of our own when Ceph is not answering (the summary says
  which: ``s3_backend``).

Worker processes get the configuration as environment variables only (:meth:`env`), as
a user's process would; the checking side gets the same as :class:`Settings`. The
``object_*`` methods look at the primary store directly (a directory walk, or the bucket
listing through boto3), never through filetier, so a check cannot share filetier's bugs.

The machine's services are reached through ``testbed/services.py`` (shared with the tests
and the benchmarks), so the suites and the tests agree on where PostgreSQL and Ceph live.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from filetier import Settings

Mode = Literal["embedded", "production"]
OBJECT_KEY_RE = re.compile(r"^sha256/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})$")
MiB = 1024 * 1024


def key_is_sound(key: str) -> bool:
    """``sha256/ab/cd/abcd…``: the layout every object key must have."""
    match = OBJECT_KEY_RE.match(key)
    return match is not None and match[3].startswith(match[1] + match[2])


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ObjectEntry:
    key: str
    size: int
    tag: str  # changes whenever the bytes could have: ETag, or inode/size/mtime


@dataclass
class StoreUnderTest:
    mode: Mode
    root: Path
    database_url: str | None = None
    s3: Any = None  # testbed.services.S3Server
    bucket: str | None = None
    s3_backend: str = "local"
    s3_note: str = ""  # why production mode is not on Ceph, when it is not
    _moto: Any = None
    _hashes: dict[tuple[str, str], str] = field(default_factory=dict)

    # -- layout ---------------------------------------------------------------------------

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def out(self) -> Path:
        """The allowed download root."""
        return self.root / "out"

    @property
    def scratch(self) -> Path:
        """Upload sources and other files of the harness itself (not the store's)."""
        return self.root / "scratch"

    @property
    def objects_dir(self) -> Path:
        return self.home / "objects"

    def make_dirs(self) -> StoreUnderTest:
        for directory in (self.home, self.out, self.scratch):
            directory.mkdir(parents=True, exist_ok=True)
        return self

    # -- configuration --------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a worker process: filetier reads nothing else."""
        env = {
            "FILETIER_HOME": str(self.home),
            "FILETIER_ALLOWED_ROOTS": str(self.out),
            "FILETIER_FSYNC": "0",
            "FILETIER_BOOKKEEPING_FLUSH_SECONDS": "0.05",
            "FILETIER_LOCK_TIMEOUT_SECONDS": "20",
        }
        if self.mode == "production":
            assert self.database_url is not None and self.s3 is not None and self.bucket
            env["DATABASE_URL"] = self.database_url
            env.update(self.s3.env(self.bucket))
            env.update(
                FILETIER_STORAGE_RETRY_ATTEMPTS="2",
                FILETIER_STORAGE_RETRY_TIMEOUT_SECONDS="10",
                FILETIER_STORAGE_TIMEOUT_SECONDS="30",
                FILETIER_DATABASE_TIMEOUT_SECONDS="10",
            )
        env.update(extra)
        return env

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": self.home,
            "allowed_roots": str(self.out),
            "fsync": False,
            "bookkeeping_flush_seconds": 0.05,
            "lock_timeout_seconds": 20,
        }
        if self.mode == "production":
            values.update(self.s3.settings_overrides(self.bucket))
            values["database_url"] = self.database_url
            values["storage_timeout_seconds"] = 30
            values["storage_retry_timeout_seconds"] = 10
        values.update(overrides)
        return Settings(**values)

    # -- the primary store, seen directly -------------------------------------------------

    def object_entries(self) -> list[ObjectEntry]:
        """Every object the primary holds (any key, not only well-formed ones)."""
        if self.mode == "embedded":
            found = []
            top = self.objects_dir / "sha256"
            for path in top.rglob("*") if top.exists() else ():
                with contextlib.suppress(FileNotFoundError):
                    st = path.lstat()
                    if path.is_dir():
                        continue
                    key = path.relative_to(self.objects_dir).as_posix()
                    tag = f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
                    found.append(ObjectEntry(key, st.st_size, tag))
            return found
        client = self.s3.client()
        entries = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                entries.append(ObjectEntry(item["Key"], item["Size"], item["ETag"]))
        return entries

    def object_keys(self) -> set[str]:
        return {e.key for e in self.object_entries()}

    def hash_object(self, entry: ObjectEntry) -> str:
        """SHA-256 of an object's bytes, read directly (remembered per key and tag)."""
        memo = (entry.key, entry.tag)
        if memo in self._hashes:
            return self._hashes[memo]
        if self.mode == "embedded":
            value = sha256_of_file(self.objects_dir / entry.key)
        else:
            body = self.s3.client().get_object(Bucket=self.bucket, Key=entry.key)["Body"]
            digest = hashlib.sha256()
            for chunk in iter(lambda: body.read(MiB), b""):
                digest.update(chunk)
            value = digest.hexdigest()
        self._hashes[memo] = value
        return value

    def unsound_objects(self) -> list[str]:
        """Objects that are not complete at their own name: a bad key, or bytes that do
        not hash to the key's name. Anything here is partial or corrupt data made visible."""
        bad = []
        for entry in self.object_entries():
            if not key_is_sound(entry.key):
                bad.append(f"{entry.key} (not an object key)")
                continue
            with contextlib.suppress(FileNotFoundError):
                if self.hash_object(entry) != entry.key.rsplit("/", 1)[1]:
                    bad.append(f"{entry.key} ({entry.size} bytes that do not hash to the name)")
        return bad

    def open_multipart_uploads(self) -> int:
        if self.mode == "embedded":
            return 0
        answer = self.s3.client().list_multipart_uploads(Bucket=self.bucket)
        return len(answer.get("Uploads", []))

    def temp_files(self) -> list[Path]:
        """Temp files a killed process may leave: upload staging and cache fills."""
        places = [self.objects_dir / ".staging", self.home / "cache" / "tmp"]
        return sorted(p for d in places if d.exists() for p in d.glob("*.tmp"))

    # -- teardown -------------------------------------------------------------------------

    def close(self) -> None:
        if self.mode != "production":
            return
        from testbed.services import drop_database

        with contextlib.suppress(Exception):
            drop_database(self.database_url or "")
        with contextlib.suppress(Exception):
            client = self.s3.client()
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                for item in page.get("Contents", []):
                    client.delete_object(Bucket=self.bucket, Key=item["Key"])
            client.delete_bucket(Bucket=self.bucket)
        if self._moto is not None:
            self._moto.stop()


def ceph_status() -> tuple[Any, str]:
    """Ceph RGW if it takes a write within seconds, else None; and why not.

    Answering ``GET /`` is not enough: a Ceph whose OSD is full still answers it but
    hangs every write, so the probe creates a bucket, writes, and removes both.
    """
    from botocore.config import Config

    from testbed.services import ceph_server

    if os.environ.get("FILETIER_TEST_SKIP_CEPH") == "1":
        return None, "FILETIER_TEST_SKIP_CEPH=1"
    server = ceph_server()
    if server is None:
        return None, "Ceph RGW is not answering on its endpoint"
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
        config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 1}),
    )
    bucket = f"ft-probe-{os.urandom(6).hex()}"
    try:
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="probe", Body=b"probe")
        client.delete_object(Bucket=bucket, Key="probe")
        client.delete_bucket(Bucket=bucket)
    except Exception as exc:  # noqa: BLE001 - any failure means: not usable now
        return None, (
            "Ceph RGW answers GET / but did not take a write within 10 s "
            f"({type(exc).__name__}); its OSD may be full (`ceph -s`)"
        )
    return server, "ok"


def s3_server(prefer_ceph: bool = True) -> tuple[Any, Any, str]:
    """Ceph RGW when it takes writes (and is preferred), else a moto server of our own.

    Returns ``(server, moto_process_or_None, why_not_ceph)``; the caller stops moto.
    """
    from testbed.services import MotoProcess

    reason = "moto requested"
    if prefer_ceph:
        server, reason = ceph_status()
        if server is not None:
            return server, None, ""
    moto = MotoProcess().start()
    return moto.server(), moto, reason


def build_store(mode: Mode, root: Path, *, prefer_ceph: bool = True) -> StoreUnderTest:
    """A fresh store of ``mode`` under ``root`` (a fresh database and bucket in production)."""
    if mode == "embedded":
        return StoreUnderTest("embedded", root).make_dirs()
    from testbed.services import create_database

    server, moto, why_not_ceph = s3_server(prefer_ceph)
    bucket = server.create_bucket()
    url = create_database()
    return StoreUnderTest(
        "production",
        root,
        database_url=url,
        s3=server,
        bucket=bucket,
        s3_backend=server.name,
        s3_note=why_not_ceph,
        _moto=moto,
    ).make_dirs()


@contextlib.contextmanager
def store_under_test(
    mode: Mode, root: Path, *, prefer_ceph: bool = True
) -> Iterator[StoreUnderTest]:
    sut = build_store(mode, root, prefer_ceph=prefer_ceph)
    try:
        yield sut
    finally:
        sut.close()


def age(paths: list[Path], seconds: float = 2 * 3600) -> None:
    """Make files look ``seconds`` old (cleanup only removes temp files older than 1 h)."""
    old = time.time() - seconds
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.utime(path, (old, old))
