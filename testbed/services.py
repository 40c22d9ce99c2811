"""Real services for the test suite: PostgreSQL databases, moto's S3 server, Ceph RGW,
and the real Supabase Storage server.

PostgreSQL runs on the machine (127.0.0.1:5432, trust auth); each test gets its own
database. moto's S3 server is started once per session on a free port. Ceph's radosgw is
started by ``scripts/start-ceph-rgw.sh`` and Supabase Storage by
``scripts/start-supabase-storage.sh`` (``scripts/test`` runs both); their tests are
skipped only when ``FILETIER_TEST_SKIP_CEPH=1`` / ``FILETIER_TEST_SKIP_SUPABASE=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import boto3

PG_ADMIN_URL = os.environ.get("FILETIER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
RGW_ENDPOINT = os.environ.get("FILETIER_TEST_RGW_ENDPOINT", "http://127.0.0.1:7480")
RGW_KEYS = ("testkey", "testsecret")
# What scripts/start-supabase-storage.sh leaves for clients (read here, not from the
# environment, which the tests clear of SUPABASE_* variables).
# The script's WORK_DIR default is ${TMPDIR:-/tmp}/filetier-supabase.
SUPABASE_EXPORTS = (
    Path(
        os.environ.get("FILETIER_TEST_SUPABASE_DIR")
        or Path(os.environ.get("TMPDIR") or "/tmp") / "filetier-supabase"
    )
    / "run"
    / "exports.env"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()  # noqa: S310 - loopback test server
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False
    return True


# -- PostgreSQL ---------------------------------------------------------------------------


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database() -> str:
    name = f"ft_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(
        _admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "  # noqa: S608 - our own name
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
    )
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}"'))


# -- S3 servers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    name: str

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def create_bucket(self) -> str:
        bucket = f"ft-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def endpoint_via(self, base: str) -> str:
        """This server's S3 endpoint as reached through a proxy at ``base``."""
        return base

    def object_keys(self, bucket: str) -> list[str]:
        keys: list[str] = []
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def settings_overrides(self, bucket: str) -> dict[str, object]:
        return {
            "s3_bucket": bucket,
            "s3_endpoint": self.endpoint,
            "s3_access_key_id": self.access_key,
            "s3_secret_access_key": self.secret_key,
            "storage_retry_attempts": 2,
            "storage_retry_timeout_seconds": 5,
            "storage_timeout_seconds": 10,
        }

    def env(self, bucket: str) -> dict[str, str]:
        return {
            "FILETIER_S3_BUCKET": bucket,
            "FILETIER_S3_ENDPOINT": self.endpoint,
            "FILETIER_S3_ACCESS_KEY_ID": self.access_key,
            "FILETIER_S3_SECRET_ACCESS_KEY": self.secret_key,
        }


class MotoProcess:
    """moto's S3 server in a child process, which a test may stop and start again."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not answers(self.endpoint):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("moto server did not start")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            self.proc = None

    def server(self) -> S3Server:
        return S3Server(self.endpoint, "testing", "testing-secret", "moto")


@dataclass(frozen=True)
class SupabaseServer(S3Server):
    """The real Supabase Storage server behind its /storage/v1 gateway.

    filetier reaches it the way the design configures it: ``SUPABASE_URL`` and the two
    keys, the S3 session-token form, the bucket created through the REST API. The S3
    access keys are only for the test's own look from outside (boto3).
    """

    url: str = ""
    anon_key: str = ""
    service_key: str = ""
    database_url: str = ""

    def endpoint_via(self, base: str) -> str:
        return base + "/storage/v1/s3"

    def create_bucket(self) -> str:
        bucket = f"ft-{uuid.uuid4().hex[:16]}"
        request = urllib.request.Request(  # noqa: S310 - loopback test server
            f"{self.url}/storage/v1/bucket",
            data=json.dumps({"name": bucket, "public": False}).encode(),
            headers={
                "Authorization": f"Bearer {self.service_key}",
                "Content-Type": "application/json",
            },
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310
        return bucket

    def settings_overrides(self, bucket: str) -> dict[str, object]:
        return {
            "s3_bucket": bucket,
            "supabase_url": self.url,
            "supabase_key": self.anon_key,
            "supabase_service_key": self.service_key,
            "storage_retry_attempts": 2,
            "storage_retry_timeout_seconds": 5,
            "storage_timeout_seconds": 10,
        }

    def env(self, bucket: str) -> dict[str, str]:
        return {
            "FILETIER_S3_BUCKET": bucket,
            "SUPABASE_URL": self.url,
            "SUPABASE_KEY": self.anon_key,
            "SUPABASE_SERVICE_KEY": self.service_key,
        }


def supabase_exports() -> dict[str, str]:
    """The ``export NAME='value'`` lines the start script wrote, as a dict."""
    found: dict[str, str] = {}
    for line in SUPABASE_EXPORTS.read_text().splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            found[name] = value
    return found


def supabase_server() -> SupabaseServer | None:
    if not SUPABASE_EXPORTS.is_file():
        return None
    env = supabase_exports()
    if not answers(env["SUPABASE_URL"] + "/storage/v1/bucket"):
        return None
    return SupabaseServer(
        endpoint=env["SUPABASE_S3_ENDPOINT"],
        access_key=env["SUPABASE_S3_ACCESS_KEY_ID"],
        secret_key=env["SUPABASE_S3_SECRET_ACCESS_KEY"],
        name="supabase",
        url=env["SUPABASE_URL"],
        anon_key=env["SUPABASE_KEY"],
        service_key=env["SUPABASE_SERVICE_KEY"],
        database_url=env["SUPABASE_DATABASE_URL"],
    )


def ceph_server() -> S3Server | None:
    if not answers(RGW_ENDPOINT):
        return None
    return S3Server(RGW_ENDPOINT, *RGW_KEYS, name="ceph")
