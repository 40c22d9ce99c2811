"""No key, token or password appears in any log line, error, setting dump or CLI output.

Every secret filetier reads is configured with a distinctive value (a random hex core,
so any leak, whole or cut, is found by substring search). Then operations that succeed
and operations that fail run with everything captured:

- ``Settings``: ``repr``, ``str``, ``model_dump_json``, ``public_view``, validation errors;
- the library in production mode (PostgreSQL with a password in its URL, an S3 bucket,
  a provider): uploads, reads, maintenance, provider copies; and failures: a missing
  bucket, an unreachable S3 endpoint in Supabase's session-token form, a wrong provider
  key, a database that refuses connections, a malformed database URL, Ceph RGW refusing
  a wrong S3 secret (when Ceph takes writes);
- the CLI as a user runs it: ``doctor``, ``doctor --json`` and ``--verbose`` commands,
  succeeding and failing.

Captured: every log record at DEBUG (``caplog``, all loggers), stdout and stderr
(``capfd``, including native libraries), each error's message, ``repr`` and whole
traceback chain, and the CLI's stdout and stderr.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from filetier import FileStore, Settings
from filetier.errors import ConfigError
from testbed.provider_server import ProviderServer
from testbed.services import S3Server, free_port


def _secret(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


SECRETS: dict[str, str] = {
    "SUPABASE_KEY": _secret("sb-anon"),
    "SUPABASE_SERVICE_KEY": _secret("sb-service"),
    "FILETIER_S3_SECRET_ACCESS_KEY": _secret("s3secret"),
    "FILETIER_S3_SESSION_TOKEN": _secret("s3session"),
    "KIMI_API_KEY": _secret("sk-kimi"),
    "GLM_API_KEY": _secret("glm") + ".abcdef",
    "OPENAI_API_KEY": _secret("sk-openai"),
}
ALICE_TOKEN = _secret("tok-alice")
BOB_TOKEN = _secret("tok-bob")
SECRETS["FILETIER_API_TOKENS"] = f"alice:{ALICE_TOKEN},bob:{BOB_TOKEN}"
DB_PASSWORD = _secret("pw")
# A password with a raw "@" (users paste them unencoded) and one percent-encoded.
AT_PASSWORD = "p@" + _secret("ss")
ENCODED_PASSWORD = "p%40" + _secret("ss")
CLI = "from filetier.interfaces.cli.app import main; main()"


def _values() -> dict[str, str]:
    return {
        **SECRETS,
        "alice token": ALICE_TOKEN,
        "bob token": BOB_TOKEN,
        "database password": DB_PASSWORD,
        "database password with @": AT_PASSWORD,
        "database password, encoded": ENCODED_PASSWORD,
    }


def _cores(value: str) -> list[str]:
    """The random hex cores of a configured value (``uuid4().hex``, 32 characters)."""
    return [part for part in value.replace(".", "-").split("-") if len(part) == 32]


def needles() -> dict[str, str]:
    """What must never appear: each secret's random core, its head and its tail (a
    leak of part of a secret is a leak)."""
    found: dict[str, str] = {}
    for name, value in _values().items():
        for core in _cores(value):
            found[f"{name} (head)"] = core[:10]
            found[f"{name} (tail)"] = core[-10:]
    return found


def assert_no_leak(*texts: str) -> None:
    found = leaks(*texts)
    assert not found, "secret shown: " + "; ".join(found)


def leaks(*texts: str) -> list[str]:
    """Each leak, named, with the text around it (every secret core shown as ``<…>``,
    so the failure message does not repeat the leak)."""
    joined = "\n".join(texts)
    found = []
    for name, needle in needles().items():
        at = joined.find(needle)
        if at >= 0:
            around = joined[max(0, at - 70) : at + len(needle) + 40]
            for value in _values().values():
                for core in _cores(value):
                    for part in (core, core[:10], core[-10:]):
                        around = around.replace(part, "<…>")
            found.append(f"{name} in: {around!r}")
    return found


def error_texts(error: BaseException) -> list[str]:
    """Everything an error could show: message, repr, the whole chained traceback."""
    return [str(error), repr(error), "".join(traceback.format_exception(error))]


def with_password(url: str, password: str) -> str:
    """``postgresql://postgres@host/db`` -> ``postgresql://postgres:PASSWORD@host/db``
    (the test server trusts loopback, so any password is accepted)."""
    return url.replace("postgres@", f"postgres:{password}@", 1)


@pytest.fixture(scope="module")
def provider() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=SECRETS["KIMI_API_KEY"]) as server:
        yield server


@pytest.fixture
def secret_env(
    monkeypatch: pytest.MonkeyPatch,
    home: Path,
    pg_url: str,
    moto: S3Server,
    provider: ProviderServer,
) -> dict[str, str]:
    """Production mode with every secret set, as environment variables."""
    bucket = moto.create_bucket()
    env = {
        **SECRETS,
        "FILETIER_HOME": str(home),
        "FILETIER_FSYNC": "0",
        "FILETIER_BOOKKEEPING_FLUSH_SECONDS": "0.05",
        "DATABASE_URL": with_password(pg_url, DB_PASSWORD),
        "FILETIER_DATABASE_TIMEOUT_SECONDS": "3",
        "SUPABASE_URL": "https://abcdefghij.supabase.co",
        "FILETIER_S3_BUCKET": bucket,
        "FILETIER_S3_ENDPOINT": moto.endpoint,
        "FILETIER_S3_ACCESS_KEY_ID": moto.access_key,
        "FILETIER_STORAGE_RETRY_ATTEMPTS": "2",
        "FILETIER_STORAGE_RETRY_TIMEOUT_SECONDS": "3",
        "FILETIER_STORAGE_TIMEOUT_SECONDS": "3",
        "FILETIER_STORAGE_CONNECT_TIMEOUT_SECONDS": "1",
        "KIMI_BASE_URL": provider.base_url,  # the right key: calls succeed
        "GLM_BASE_URL": provider.base_url,  # a key the provider refuses
        "OPENAI_BASE_URL": provider.base_url,  # likewise
        "FILETIER_PROVIDER_RETRY_ATTEMPTS": "2",
        "FILETIER_PROVIDER_TIMEOUT_SECONDS": "3",
        "FILETIER_PROVIDER_MAX_RETRY_WAIT_SECONDS": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def captured(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> Callable[[], list[str]]:
    """Every log record (all loggers, DEBUG) and all output so far, as texts."""
    caplog.set_level(logging.DEBUG)

    def texts() -> list[str]:
        out, err = capfd.readouterr()
        records = []
        for record in caplog.records:
            records.append(record.getMessage())
            if record.exc_info and record.exc_info[1] is not None:
                records.extend(error_texts(record.exc_info[1]))
        return [out, err, *records, caplog.text]

    return texts


async def attempt(call: Callable[[], Awaitable[Any]], errors: list[str]) -> Any:
    """Run ``call``; a failure's every text is kept for the leak check."""
    try:
        return await call()
    except Exception as exc:
        errors.extend(error_texts(exc))
        errors.append(type(exc).__name__)
        return None


# --------------------------------------------------------------------------- settings


def test_settings_never_show_a_secret(secret_env: dict[str, str]) -> None:
    settings = Settings()
    assert settings.kimi_api_key is not None  # the secrets were read
    assert settings.kimi_api_key.get_secret_value() == SECRETS["KIMI_API_KEY"]
    texts = [
        repr(settings),
        str(settings),
        f"{settings}",
        settings.model_dump_json(),
        str(settings.model_dump()),
        json.dumps(settings.public_view(), default=str),
        str(settings.public_view()),
        settings.primary_description,
    ]
    for password in (DB_PASSWORD, AT_PASSWORD, ENCODED_PASSWORD):
        other = settings.model_copy(
            update={
                "database_url_override": SecretStr(
                    with_password("postgresql://postgres@127.0.0.1:5432/db", password)
                )
            }
        )
        texts += [repr(other), json.dumps(other.public_view(), default=str)]
    assert_no_leak(*texts)


@pytest.mark.parametrize(
    "overrides",
    [
        {"api_tokens": f"alice-{ALICE_TOKEN}"},  # no owner: refused
        {"api_tokens": f"alice:{ALICE_TOKEN[:10]}"},  # too short: refused
    ],
    ids=["token-without-owner", "short-token"],
)
def test_a_refused_setting_does_not_echo_a_secret(
    secret_env: dict[str, str], overrides: dict[str, str]
) -> None:
    # The refusal itself is part of the claim: a setting accepted here would check no text.
    with pytest.raises(ConfigError) as refused:
        Settings(**overrides).token_owners  # noqa: B018 - parsed on first use
    assert_no_leak(*error_texts(refused.value))


def test_a_database_url_with_a_bad_port_is_kept_secret_until_it_fails(
    secret_env: dict[str, str],
) -> None:
    # Accepted when read (the URL is only parsed by the driver, when a store opens: the
    # library tests below check that failure's texts); every view of it hides the password.
    url = f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:notaport/db"
    settings = Settings(database_url=url)
    assert DB_PASSWORD in settings.database_url  # read (this property is for the driver)
    assert_no_leak(
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
        json.dumps(settings.public_view(), default=str),
    )


# --------------------------------------------------------------------------- library


async def test_library_operations_that_succeed_and_fail_log_no_secret(
    secret_env: dict[str, str],
    captured: Callable[[], list[str]],
    tmp_path: Path,
    provider: ProviderServer,
) -> None:
    errors: list[str] = []
    async with FileStore(Settings()) as store:
        up = await store.upload_file(b"hello secrets\n" * 100, filename="notes.txt")
        await store.read_bytes(up.file_id)
        await store.download_file(up.file_id)
        await store.list()
        await store.verify()
        await store.gc(dry_run=True)
        await store.cleanup_cache(dry_run=True)
        await store.stats()
        await store.history()
        copy = await store.get_provider_file_id(up.file_id, "kimi")
        assert copy.provider_file_id
        for name in ("glm", "openai"):  # keys the provider refuses
            await attempt(lambda name=name: store.get_provider_file_id(up.file_id, name), errors)
        await attempt(lambda: store.download_file(up.file_id, "/etc/passwd"), errors)
        await attempt(lambda: store.stat(str(uuid.uuid4())), errors)
    assert "ProviderAuthError" in errors

    failures: dict[str, dict[str, Any]] = {
        "missing bucket": {"s3_bucket": "no-such-bucket-" + uuid.uuid4().hex[:8]},
        "s3 endpoint down": {"s3_endpoint": f"http://127.0.0.1:{free_port()}"},
        "supabase session form, endpoint down": {
            "s3_access_key_id": None,
            "s3_secret_access_key": None,
            "s3_endpoint": f"http://127.0.0.1:{free_port()}",
        },
    }
    for overrides in failures.values():
        async with FileStore(Settings().model_copy(update=overrides)) as store:
            await attempt(lambda store=store: store.upload_file(b"x" * 1000), errors)
    # The missing bucket is a refusal (no retry); the endpoints that are down, outages.
    assert errors.count("StorageRefusedError") == 1
    assert errors.count("StorageUnavailableError") == len(failures) - 1

    for url in (
        f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:{free_port()}/nothing",
        f"postgresql://postgres:{AT_PASSWORD}@127.0.0.1:{free_port()}/nothing",
        f"postgresql://postgres:{ENCODED_PASSWORD}@127.0.0.1:{free_port()}/nothing",
        f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:notaport/nothing",
    ):
        settings = Settings(database_url=url, home=tmp_path / "db-down", database_timeout_seconds=2)

        async def open_store(settings: Settings = settings) -> None:
            async with FileStore(settings):
                pass

        await attempt(open_store, errors)
    assert errors.count("MetadataUnavailableError") >= 3

    assert_no_leak(*errors, *captured())


async def test_a_wrong_s3_secret_on_ceph_is_refused_without_showing_it(
    tmp_path: Path, captured: Callable[[], list[str]]
) -> None:
    """Ceph RGW checks signatures (moto does not): the wrong secret is refused, and the
    refusal does not show it."""
    from reliability.backends import ceph_status

    ceph, why = ceph_status()
    if ceph is None:
        pytest.skip(why)
    bucket = ceph.create_bucket()
    errors: list[str] = []
    settings = Settings(
        home=tmp_path / "ceph",
        fsync=False,
        **{
            **ceph.settings_overrides(bucket),
            "s3_secret_access_key": SECRETS["FILETIER_S3_SECRET_ACCESS_KEY"],
        },  # type: ignore[arg-type]
    )
    try:
        async with FileStore(settings) as store:
            await attempt(lambda: store.upload_file(b"y" * 1000), errors)
    finally:
        ceph.client().delete_bucket(Bucket=bucket)
    assert "StorageRefusedError" in errors  # answered and refused: not retried
    assert any("secret key is wrong" in e or "SignatureDoesNotMatch" in e for e in errors)
    assert_no_leak(*errors, *captured())


# --------------------------------------------------------------------------- CLI


def run_cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_doctor_and_verbose_commands_print_no_secret(
    secret_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**os.environ, **secret_env}
    source = tmp_path / "report.txt"
    source.write_text("quarterly numbers\n")
    outputs: list[str] = []

    def cli(*args: str, env: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        done = run_cli(env, tmp_path, *args)
        outputs.extend([done.stdout, done.stderr])
        return done

    doctor = cli("doctor")
    assert "FAIL" in doctor.stdout  # glm and openai refuse their keys
    assert "****" in doctor.stdout
    cli("doctor", "--json")
    uploaded = cli("-v", "upload", str(source), "--json")
    assert uploaded.returncode == 0, uploaded.stderr
    file_id = json.loads(uploaded.stdout)["file_id"]
    for args in (
        ("-v", "ls", "--json"),
        ("-v", "stat", file_id),
        ("-v", "download", file_id, "--dest", str(tmp_path / "copy.txt")),
        ("-v", "verify"),
        ("-v", "gc", "--dry-run"),
        ("-v", "stats"),
    ):
        done = cli(*args)
        assert done.returncode == 0, (args, done.stderr)

    # Failing: a bucket that does not exist, a database that refuses, a raw "@" password.
    missing = cli(
        "-v", "upload", str(source), env={**env, "FILETIER_S3_BUCKET": "no-such-bucket-x"}
    )
    assert missing.returncode == 10, missing.stderr
    port = free_port()
    for password in (DB_PASSWORD, AT_PASSWORD):
        down = {
            **env,
            "DATABASE_URL": f"postgresql://postgres:{password}@127.0.0.1:{port}/nothing",
            "FILETIER_DATABASE_TIMEOUT_SECONDS": "2",
        }
        assert cli("-v", "ls", env=down).returncode == 11
        cli("doctor", env=down)

    assert_no_leak(*outputs)
