"""S3 and Supabase Storage configuration, and `doctor` on a production setup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from filetier import ConfigError, Settings
from filetier.tiers.factory import build_primary, s3_credentials
from filetier.tiers.objectstore import ObstorePrimary
from testbed.services import S3Server

ANON_KEY = "eyJhbGciOiJIUzI1NiJ9.anon-key-value"
JWT = "eyJhbGciOiJIUzI1NiJ9.user-session-jwt"


def test_supabase_endpoint_and_session_token_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_URL", "https://abcdefghij.supabase.co")
    monkeypatch.setenv("SUPABASE_KEY", ANON_KEY)
    monkeypatch.setenv("FILETIER_S3_BUCKET", "files")
    monkeypatch.setenv("FILETIER_S3_SESSION_TOKEN", JWT)
    settings = Settings()
    assert settings.s3_endpoint_url == "https://abcdefghij.storage.supabase.co/storage/v1/s3"
    assert s3_credentials(settings) == {
        "access_key_id": "abcdefghij",
        "secret_access_key": ANON_KEY,
        "session_token": JWT,
    }
    primary = build_primary(settings)
    assert isinstance(primary, ObstorePrimary)
    assert "abcdefghij.storage.supabase.co" in primary.name
    assert ANON_KEY not in primary.name and JWT not in primary.name
    view = json.dumps(settings.public_view(), default=str)
    assert ANON_KEY not in view and JWT not in view


def test_explicit_s3_keys_win_and_any_endpoint_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FILETIER_S3_BUCKET", "b")
    monkeypatch.setenv("FILETIER_S3_ENDPOINT", "http://127.0.0.1:9000/")
    monkeypatch.setenv("FILETIER_S3_ACCESS_KEY_ID", "AKIA-TEST")
    monkeypatch.setenv("FILETIER_S3_SECRET_ACCESS_KEY", "secret-value")
    settings = Settings()
    assert settings.s3_endpoint_url == "http://127.0.0.1:9000"
    assert settings.s3_path_style is True
    assert s3_credentials(settings) == {
        "access_key_id": "AKIA-TEST",
        "secret_access_key": "secret-value",
    }


def test_missing_credentials_are_an_actionable_config_error() -> None:
    settings = Settings(s3_bucket="b", s3_endpoint="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="FILETIER_S3_ACCESS_KEY_ID"):
        build_primary(settings)


def _doctor(home: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("FILETIER_", "SUPABASE_"))}
    environ.pop("DATABASE_URL", None)
    environ.update({"FILETIER_HOME": str(home)}, **env)
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from filetier.interfaces.cli.app import main; main()",
            "doctor",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


def test_doctor_checks_the_bucket_and_hides_secrets(home: Path, pg_url: str, s3: S3Server) -> None:
    bucket = s3.create_bucket()
    env = {**s3.env(bucket), "DATABASE_URL": pg_url}
    ok = _doctor(home, env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = json.loads(ok.stdout)
    primary = next(c for c in report["checks"] if c["name"] == "primary store")
    assert primary["ok"] and "write, read and delete ok" in primary["detail"]
    assert s3.secret_key not in ok.stdout + ok.stderr
    if s3.name == "supabase":
        return  # a missing bucket is created there (tests/test_supabase.py)

    missing = _doctor(home, {**env, "FILETIER_S3_BUCKET": "no-such-bucket-for-doctor"})
    assert missing.returncode == 13
    report = json.loads(missing.stdout)
    primary = next(c for c in report["checks"] if c["name"] == "primary store")
    assert not primary["ok"]
    assert "bucket does not exist" in primary["detail"]
    assert s3.secret_key not in missing.stdout + missing.stderr


@pytest.mark.parametrize(
    ("endpoint", "mode", "signed"),
    [
        (None, "auto", False),  # AWS, over HTTPS
        ("https://abcd.storage.supabase.co/storage/v1/s3", "auto", False),
        ("http://127.0.0.1:7480", "auto", False),  # loopback: no wire
        ("http://[::1]:9000", "auto", False),
        ("http://localhost:9000", "auto", False),
        ("http://10.0.0.5:9000", "auto", True),  # plain HTTP to another host
        ("http://minio:9000", "auto", True),
        ("http://10.0.0.5:9000", "never", False),
        ("https://s3.example.com", "always", True),
    ],
)
def test_payload_signing_is_skipped_only_where_no_plain_wire_carries_the_bytes(
    endpoint: str | None, mode: str, signed: bool
) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        s3_bucket="b",
        s3_endpoint=endpoint,
        s3_sign_payload=mode,
    )
    assert settings.s3_signs_payload is signed
    assert settings.public_view()["s3_payload_signed"] is signed


def test_an_unknown_payload_signing_mode_is_a_clear_error(home: Path) -> None:
    done = _doctor(home, {"FILETIER_S3_BUCKET": "b", "FILETIER_S3_SIGN_PAYLOAD": "sometimes"})
    assert done.returncode == 3
    assert "invalid setting FILETIER_S3_SIGN_PAYLOAD" in done.stderr
    assert "'auto', 'always' or 'never'" in done.stderr
