"""Shared fixtures: every test gets its own data dir and a clean environment."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from filetier import FileStore, Settings

# Variables a developer's shell or CI may set that would point tests at shared state.
_ENV_PREFIXES = ("FILETIER_", "SUPABASE_")
_ENV_NAMES = (
    "DATABASE_URL",
    "FILE_CACHE_DIR",
    "MAX_MEMORY_CACHE_SIZE",
    "MAX_CACHE_SIZE_MB",
    "MAX_CACHE_AGE_DAYS",
    # A developer's real provider keys and endpoints must not reach any test (a real
    # Gemini key, say, would make doctor and sync tests call Google).
    *(
        f"{provider}_{suffix}"
        for provider in ("KIMI", "GLM", "OPENAI", "ANTHROPIC", "MISTRAL", "GEMINI", "GOOGLE")
        for suffix in ("API_KEY", "BASE_URL")
    ),
    "ANTHROPIC_AUTH_TOKEN",
    "MISTRAL_DEBUG",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES) or name in _ENV_NAMES:
            monkeypatch.delenv(name, raising=False)
    # Settings reads .env from the working directory; run each test somewhere empty.
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def settings(home: Path) -> Settings:
    """The embedded default: SQLite + local primary in ``home``."""
    return Settings(home=home, fsync=False, bookkeeping_flush_seconds=0.05)


@pytest.fixture
def remote_settings(home: Path, tmp_path: Path) -> Settings:
    """A primary that is not read in place (``file://``), so the disk cache is in play."""
    return Settings(
        home=home,
        primary_url=f"file://{tmp_path / 'remote'}",
        fsync=False,
        bookkeeping_flush_seconds=0.05,
    )


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[FileStore]:
    async with FileStore(settings) as opened:
        yield opened


@pytest.fixture
async def remote_store(remote_settings: Settings) -> AsyncIterator[FileStore]:
    async with FileStore(remote_settings) as opened:
        yield opened


# -- production-mode services (see testbed/services.py) ---------------------------------------

from collections.abc import Iterator  # noqa: E402

from testbed.services import (  # noqa: E402
    MotoProcess,
    S3Server,
    SupabaseServer,
    ceph_server,
    create_database,
    drop_database,
    supabase_server,
)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the machine's server, dropped afterwards."""
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def moto() -> Iterator[S3Server]:
    proc = MotoProcess().start()
    try:
        yield proc.server()
    finally:
        proc.stop()


# Read once, at import: clean_env removes FILETIER_* before a test asks for a server.
_SKIP_CEPH = os.environ.get("FILETIER_TEST_SKIP_CEPH") == "1"
_SKIP_SUPABASE = os.environ.get("FILETIER_TEST_SKIP_SUPABASE") == "1"


@pytest.fixture(scope="session")
def ceph() -> S3Server:
    if _SKIP_CEPH:
        pytest.skip("FILETIER_TEST_SKIP_CEPH=1")
    server = ceph_server()
    if server is None:
        pytest.fail(
            "Ceph RGW is not answering: run scripts/start-ceph-rgw.sh "
            "(scripts/test does) or set FILETIER_TEST_SKIP_CEPH=1 for the inner loop"
        )
    return server


@pytest.fixture(scope="session")
def supabase() -> SupabaseServer:
    if _SKIP_SUPABASE:
        pytest.skip("FILETIER_TEST_SKIP_SUPABASE=1")
    server = supabase_server()
    if server is None:
        pytest.fail(
            "Supabase Storage is not answering: run scripts/start-supabase-storage.sh "
            "(scripts/test does) or set FILETIER_TEST_SKIP_SUPABASE=1 for the inner loop"
        )
    return server


@pytest.fixture(params=["moto", "ceph", "supabase"])
def s3(request: pytest.FixtureRequest) -> S3Server:
    """Every S3 test runs against moto's emulator, a real Ceph radosgw and the real
    Supabase Storage server."""
    server: S3Server = request.getfixturevalue(request.param)
    return server


@pytest.fixture
def production_settings(home: Path, pg_url: str, moto: S3Server) -> Settings:
    """PostgreSQL metadata + an S3 bucket on moto (the fast inner loop)."""
    return Settings(
        home=home,
        database_url=pg_url,
        fsync=False,
        bookkeeping_flush_seconds=0.05,
        **moto.settings_overrides(moto.create_bucket()),  # type: ignore[arg-type]
    )
