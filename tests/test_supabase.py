"""Supabase Storage for real: the design's configuration against Supabase's own server.

The server (github.com/supabase/storage v1.70.6) is started by
``scripts/start-supabase-storage.sh``; ``scripts/test`` does it. The tier contract suite,
the production tests and the multi-host tests run against it too (the ``s3`` fixture);
this file covers what only Supabase has: its three variables, its REST-created bucket,
its session-token form, a server that ignores put-if-absent, and its PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import obstore
import pytest
from obstore.store import S3Store

from filetier import ConfigError, FileStore, Settings
from filetier.store import storage_key
from filetier.tiers.factory import build_primary, build_s3_primary, s3_credentials
from filetier.tiers.objectstore import ObstorePrimary
from filetier.tiers.supabase import learn_region, region_named_in
from testbed.services import SupabaseServer, free_port

DEFAULT_BUCKET = "exai-files"


def _rest(
    server: SupabaseServer, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310 - loopback test server
        f"{server.url}/storage/v1{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {server.service_key}",
            "Content-Type": "application/json",
        },
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _drop_bucket(server: SupabaseServer, bucket: str) -> None:
    _rest(server, "POST", f"/bucket/{bucket}/empty")
    _rest(server, "DELETE", f"/bucket/{bucket}")


def _design_env(server: SupabaseServer) -> dict[str, str]:
    """Exactly the design's three variables."""
    return {
        "SUPABASE_URL": server.url,
        "SUPABASE_KEY": server.anon_key,
        "SUPABASE_SERVICE_KEY": server.service_key,
    }


# --------------------------------------------------------------------------- configuration


async def test_the_designs_three_variables_store_files_in_a_private_supabase_bucket(
    supabase: SupabaseServer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _drop_bucket(supabase, DEFAULT_BUCKET)
    for name, value in _design_env(supabase).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FILETIER_HOME", str(home))
    settings = Settings()
    assert settings.s3_bucket_name == DEFAULT_BUCKET
    assert settings.s3_endpoint_url == f"{supabase.url}/storage/v1/s3"
    assert settings.supabase_project_ref == "filetier-local"  # the keys' `ref` claim

    async with FileStore(settings) as store:
        assert store.primary.name.startswith(f"s3://{DEFAULT_BUCKET}/ at {supabase.url}")
        stored = await store.upload_file(b"kept in Supabase Storage", filename="a.txt")
        assert stored.bytes_written == len(b"kept in Supabase Storage")
        assert supabase.object_keys(DEFAULT_BUCKET) == [storage_key(stored.sha256)]
        store.memory.clear()
        store.disk.evict(stored.sha256)
        assert await store.read_bytes(stored.file_id) == b"kept in Supabase Storage"

        status, bucket = _rest(supabase, "GET", f"/bucket/{DEFAULT_BUCKET}")
        assert status == 200 and bucket["public"] is False
        # Private: the public object URL does not serve it.
        public = f"{supabase.url}/storage/v1/object/public/{DEFAULT_BUCKET}/"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(public + storage_key(stored.sha256), timeout=10)  # noqa: S310

        await store.delete(stored.file_id)
        assert supabase.object_keys(DEFAULT_BUCKET) == []
    _drop_bucket(supabase, DEFAULT_BUCKET)


def test_project_ref_and_endpoint_are_derived_from_the_url_or_the_keys() -> None:
    hosted = Settings(
        _env_file=None,  # type: ignore[call-arg]
        supabase_url="https://abcdefghij.supabase.co/",
        supabase_key="anon-not-a-jwt",
        supabase_service_key="sb_secret_not_a_jwt",
    )
    assert hosted.s3_endpoint_url == "https://abcdefghij.storage.supabase.co/storage/v1/s3"
    assert hosted.s3_bucket_name == DEFAULT_BUCKET
    assert s3_credentials(hosted) == {
        "access_key_id": "abcdefghij",
        "secret_access_key": "anon-not-a-jwt",
        "session_token": "sb_secret_not_a_jwt",
    }

    def local(**extra: Any) -> Settings:
        options: dict[str, Any] = {
            "supabase_url": "http://supabase.internal:8000",
            "supabase_key": "anon-not-a-jwt",
            "supabase_service_key": "service-not-a-jwt",
            **extra,
        }
        return Settings(_env_file=None, **options)  # type: ignore[call-arg]

    assert local().s3_endpoint_url == "http://supabase.internal:8000/storage/v1/s3"
    with pytest.raises(ConfigError, match="FILETIER_SUPABASE_PROJECT_REF"):
        build_primary(local())
    assert s3_credentials(local(supabase_project_ref="stub"))["access_key_id"] == "stub"
    keys = local(s3_access_key_id="AK", s3_secret_access_key="sk")  # noqa: S106
    assert s3_credentials(keys) == {"access_key_id": "AK", "secret_access_key": "sk"}
    with pytest.raises(ConfigError, match="SUPABASE_KEY"):
        build_primary(local(supabase_project_ref="stub", supabase_key=None))

    # Without the service key, the design's variables alone do not pick Supabase.
    url_only = Settings(_env_file=None, supabase_url="https://x.supabase.co")  # type: ignore[call-arg]
    assert url_only.s3_bucket_name is None


def _doctor(home: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("FILETIER_", "SUPABASE_"))}
    environ.pop("DATABASE_URL", None)
    environ.update({"FILETIER_HOME": str(home)}, **env)
    return subprocess.run(
        [sys.executable, "-c", "from filetier.interfaces.cli.app import main; main()", "doctor"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


def _line(done: subprocess.CompletedProcess[str], check: str) -> str:
    found = [line for line in done.stdout.splitlines() if f" {check}: " in line]
    assert len(found) == 1, done.stdout + done.stderr
    return found[0]


def test_doctor_names_the_form_and_bucket_and_explains_each_failure_in_one_line(
    supabase: SupabaseServer, home: Path
) -> None:
    bucket = f"ft-doctor-{os.getpid()}"
    env = {**_design_env(supabase), "FILETIER_S3_BUCKET": bucket}
    secrets = (supabase.anon_key, supabase.service_key)
    runs: list[subprocess.CompletedProcess[str]] = []

    def doctor(**changes: str) -> subprocess.CompletedProcess[str]:
        done = _doctor(home, {**env, **changes})
        runs.append(done)
        return done

    try:
        ok = doctor()
        assert ok.returncode == 0, ok.stdout + ok.stderr
        line = _line(ok, "supabase storage")
        assert f"bucket {bucket} via session token (project ref filetier-local" in line
        assert "service-role key" in line and "created it (private)" in line
        assert "write, read and delete ok" in _line(ok, "primary store")
        assert "bucket exists (private)" in _line(doctor(), "supabase storage")

        wrong_anon = doctor(SUPABASE_KEY=supabase.anon_key[:-4] + "AAAA")
        assert wrong_anon.returncode == 13
        assert "check SUPABASE_KEY" in _line(wrong_anon, "primary store")

        wrong_service = doctor(SUPABASE_SERVICE_KEY=supabase.service_key[:-4] + "AAAA")
        assert wrong_service.returncode == 13
        assert "refused the service key" in _line(wrong_service, "supabase storage")

        region = doctor(FILETIER_S3_REGION="eu-west-9")
        assert region.returncode == 13
        assert "region mismatch" in _line(region, "primary store")

        # No service key: nothing creates the bucket, and doctor says what would.
        missing = doctor(
            SUPABASE_SERVICE_KEY="",
            FILETIER_S3_SESSION_TOKEN=supabase.service_key,
            FILETIER_S3_BUCKET=f"{bucket}-missing",
        )
        assert missing.returncode == 13
        assert "bucket does not exist: set SUPABASE_SERVICE_KEY" in _line(missing, "primary store")

        public = f"{bucket}-public"
        _rest(supabase, "POST", "/bucket", {"name": public, "public": True})
        try:
            exposed = doctor(FILETIER_S3_BUCKET=public)
        finally:
            _drop_bucket(supabase, public)
        assert exposed.returncode == 13
        assert "the bucket is PUBLIC" in _line(exposed, "supabase storage")

        down = doctor(SUPABASE_URL=f"http://127.0.0.1:{free_port()}")
        assert down.returncode == 13
        assert "did not answer" in _line(down, "supabase storage")
    finally:
        _drop_bucket(supabase, bucket)
    for done in runs:
        for secret in secrets:
            assert secret not in done.stdout + done.stderr
            assert secret.split(".")[2] not in done.stdout + done.stderr


# --------------------------------------------------------------------------- no put-if-absent


async def test_the_server_ignores_put_if_absent_and_filetier_never_overwrites(
    supabase: SupabaseServer, tmp_path: Path
) -> None:
    bucket = supabase.create_bucket()
    settings = Settings(home=tmp_path / "home", **supabase.settings_overrides(bucket))  # type: ignore[arg-type]
    credentials = s3_credentials(settings)
    raw = S3Store(
        bucket,
        endpoint=supabase.endpoint,
        region="us-east-1",
        client_options={"allow_http": True},
        **credentials,  # type: ignore[arg-type]
    )
    # The server's fact: If-None-Match: * is accepted and the object replaced.
    await obstore.put_async(raw, "probe", b"first")
    await obstore.put_async(raw, "probe", b"second", mode="create")
    assert bytes(await (await obstore.get_async(raw, "probe")).bytes_async()) == b"second"

    primary = build_s3_primary(settings)
    assert isinstance(primary, ObstorePrimary)
    good, other = tmp_path / "good", tmp_path / "other"
    good.write_bytes(b"the bytes the key names")
    other.write_bytes(b"anything else, e.g. a file changed after it was hashed")
    assert await primary.put_file("k/obj", good) is True
    assert await primary.put_file("k/obj", other) is False
    body = bytes(await (await obstore.get_async(raw, "k/obj")).bytes_async())
    assert body == b"the bytes the key names"


async def test_three_processes_upload_the_same_content_while_deletes_race_them(
    supabase: SupabaseServer, tmp_path: Path, pg_url: str
) -> None:
    """Three processes of one host (one data dir, one database) upload the same new
    content at once, twice over, while this process deletes every file it sees: each
    round ends with one object, intact, and every remaining row has it."""
    bucket = supabase.create_bucket()
    home = tmp_path / "home"
    settings = Settings(
        home=home, database_url=pg_url, fsync=False, **supabase.settings_overrides(bucket)
    )  # type: ignore[arg-type]
    source = tmp_path / "same.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FILETIER_", "SUPABASE_"))},
        **supabase.env(bucket),
        "FILETIER_HOME": str(home),
        "DATABASE_URL": pg_url,
        "FILETIER_FSYNC": "false",
    }
    async with FileStore(settings) as store:
        for _round in range(2):
            procs = [
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    "from filetier.interfaces.cli.app import main; main()",
                    "upload",
                    str(source),
                    "--json",
                    env=env,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                for _ in range(3)
            ]
            deleted = 0
            while any(p.returncode is None for p in procs):
                for record in (await store.list()).items:
                    await store.delete(record.file_id)
                    deleted += 1
                await asyncio.sleep(0.05)
            outputs = [await p.communicate() for p in procs]
            assert [p.returncode for p in procs] == [0, 0, 0], outputs
            results = [json.loads(out) for out, _err in outputs]
            sha = {r["sha256"] for r in results}
            assert len(sha) == 1
            remaining = (await store.list()).items
            # Every upload made its row: deleted by the loop above, or still here.
            assert deleted + len(remaining) == 3
            key = storage_key(sha.pop())
            if remaining:
                assert supabase.object_keys(bucket) == [key]
                store.memory.clear()
                store.disk.evict(remaining[0].sha256)
                assert await store.read_bytes(remaining[0].file_id) == source.read_bytes()
            for record in remaining:
                await store.delete(record.file_id)
            assert supabase.object_keys(bucket) == []


# --------------------------------------------------------------------------- Supabase's PostgreSQL


async def _schema_fingerprint(dsn: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """
            SELECT 'column', table_schema, table_name || '.' || column_name, data_type
              FROM information_schema.columns WHERE table_schema IN ('storage', 'auth')
            UNION ALL
            SELECT 'policy', schemaname, tablename || '.' || policyname, qual
              FROM pg_policies WHERE schemaname IN ('storage', 'auth')
            UNION ALL
            SELECT 'function', n.nspname, p.proname, md5(p.prosrc)
              FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname IN ('storage', 'auth')
            UNION ALL
            SELECT 'rls', n.nspname, c.relname, c.relrowsecurity::text
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname IN ('storage', 'auth') AND c.relkind = 'r'
            ORDER BY 1, 2, 3, 4
            """
        )
        return [tuple(r) for r in rows]
    finally:
        await conn.close()


async def test_migrations_run_beside_supabases_schemas_with_row_level_security(
    supabase: SupabaseServer, pg_url: str, tmp_path: Path
) -> None:
    """A database shaped like a Supabase project's (its ``storage`` and ``auth`` schemas,
    copied from the running server's database; its roles): filetier's migrations leave
    those schemas as they were, and Supabase's ``authenticated`` role sees only the
    owner its session names."""
    dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://")
    dump = subprocess.run(
        ["pg_dump", "--schema-only", "-n", "storage", "-n", "auth", supabase.database_url],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn],
        input=dump,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    before = await _schema_fingerprint(dsn)
    assert any(row[:3] == ("column", "storage", "objects.name") for row in before)

    bucket = supabase.create_bucket()
    settings = Settings(
        home=tmp_path / "home", database_url=pg_url, **supabase.settings_overrides(bucket)
    )  # type: ignore[arg-type]
    async with FileStore(settings, owner="alice") as alice:
        await alice.upload_file(b"alice's", filename="a.txt")
    async with FileStore(settings, owner="bob") as bob:
        await bob.upload_file(b"bob's", filename="b.txt")

    assert await _schema_fingerprint(dsn) == before
    conn = await asyncpg.connect(dsn)
    try:
        where = await conn.fetchrow(
            "SELECT n.nspname, c.relrowsecurity FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'file_metadata'"
        )
        assert where["nspname"] not in ("storage", "auth") and where["relrowsecurity"] is True
        table = f'"{where["nspname"]}".file_metadata'
        await conn.execute(f'GRANT USAGE ON SCHEMA "{where["nspname"]}" TO authenticated')
        await conn.execute(f"GRANT SELECT ON {table} TO authenticated")
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE authenticated")
            await conn.execute("SELECT set_config('filetier.owner', 'alice', true)")
            seen = await conn.fetch(f"SELECT original_filename FROM {table}")  # noqa: S608
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE authenticated")
            unset = await conn.fetch(f"SELECT 1 FROM {table}")  # noqa: S608
        await conn.execute(f"REVOKE ALL ON {table} FROM authenticated")
        await conn.execute(f'REVOKE ALL ON SCHEMA "{where["nspname"]}" FROM authenticated')
    finally:
        await conn.close()
    assert [r["original_filename"] for r in seen] == ["a.txt"]
    assert unset == []


async def test_the_region_is_the_setting_else_what_the_server_names_else_us_east_1(
    supabase: SupabaseServer, tmp_path: Path
) -> None:
    # What AWS-style servers say when asked in the wrong region.
    aws = (
        "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is "
        "wrong; expecting 'eu-central-1'</Message><Region>eu-central-1</Region></Error>"
    )
    assert region_named_in(aws) == "eu-central-1"
    assert region_named_in("", httpx.Headers({"x-amz-bucket-region": "ap-south-1"})) == (
        "ap-south-1"
    )
    assert region_named_in("<Error><Code>AccessDenied</Code></Error>") is None

    bucket = supabase.create_bucket()
    options: dict[str, Any] = {"home": tmp_path / "home", **supabase.settings_overrides(bucket)}
    # Supabase's server names no region to an anonymous request and accepts us-east-1.
    assert await learn_region(Settings(**options)) == "us-east-1"
    local = Settings(**options, s3_region="local")
    assert await learn_region(local) == "local"
    async with FileStore(local) as store:
        stored = await store.upload_file(b"signed for the server's own region")
        store.memory.clear()
        store.disk.evict(stored.sha256)
        assert await store.read_bytes(stored.file_id) == b"signed for the server's own region"
