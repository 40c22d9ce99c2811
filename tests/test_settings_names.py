"""Settings answer only to their documented names: never to bare field names in the
environment or a ``.env``, and never to ``$HOME`` because ``home`` matched it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest

from filetier import Settings

FILETIER = [sys.executable, "-c", "from filetier.interfaces.cli.app import main; main()"]

# Names a user's shell or another app's .env commonly sets, with a value that would show.
BARE = {
    "HOME": None,  # filled per test: a real home for the subprocess
    "OWNER": "mallory",
    "HTTP_PORT": "1",
    "HTTP_HOST": "192.0.2.1",
    "CACHE_DIR": "/nonexistent/cache",
    "API_TOKENS": "mallory:mallory-token-0123456789",
    "ALLOWED_ROOTS": "/",
    "PRIMARY_URL": "memory://",
    "TYPE_LIMITS": "text/*=0",
    "MAX_FILE_SIZE": "1",
}


def _unchanged(settings: Settings, home: Path) -> None:
    assert settings.home == home
    assert settings.owner == "default"
    assert settings.http_port == 8787
    assert settings.http_host == "127.0.0.1"
    assert settings.cache_dir == home / "cache"
    assert settings.api_tokens is None
    assert settings.allowed_roots == (home / "downloads",)
    assert settings.primary_url is None
    assert settings.type_limits == ()
    assert settings.max_file_size == 5 * 1024**3


def test_bare_names_in_the_environment_change_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    for name, value in BARE.items():
        if value is not None:
            monkeypatch.setenv(name, value)
            monkeypatch.setenv(name.lower(), value)

    settings = Settings()

    _unchanged(settings, platformdirs.user_data_path("filetier"))
    assert settings.home != tmp_path / "user"


def test_bare_names_in_a_dotenv_change_nothing(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    lines = [f"{name}={value}" for name, value in BARE.items() if value is not None]
    lines += [f"{name.lower()}={value}" for name, value in BARE.items() if value is not None]
    lines += ["home=/tmp/not-here", "cache_dir_override=/tmp/nor-here", "FILETIER_CACHE_DIR=/x"]
    dotenv.write_text("\n".join(lines) + "\n")

    settings = Settings(home=tmp_path / "data", _env_file=dotenv)

    _unchanged(settings, tmp_path / "data")


def test_documented_names_still_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FILETIER_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("FILETIER_OWNER", "alice")
    monkeypatch.setenv("FILETIER_HTTP_PORT", "9999")
    monkeypatch.setenv("FILETIER_ALLOWED_ROOTS", str(tmp_path / "out"))
    monkeypatch.setenv("FILE_CACHE_DIR", str(tmp_path / "c"))

    settings = Settings()

    assert settings.home == tmp_path / "data"
    assert settings.owner == "alice"
    assert settings.http_port == 9999
    assert settings.allowed_roots == (tmp_path / "out",)
    assert settings.cache_dir == tmp_path / "c"


def test_python_callers_use_field_names(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        owner="bob",
        cache_dir=tmp_path / "c",
        allowed_roots=str(tmp_path / "r"),
        database_url="sqlite:///x.db",
        type_limits="image/*=1KB",
    )

    assert settings.owner == "bob"
    assert settings.cache_dir == tmp_path / "c"
    assert settings.allowed_roots == (tmp_path / "r",)
    assert settings.database_url == "sqlite+aiosqlite:///x.db"
    assert settings.type_limits == (("image/*", 1000),)


def test_cli_with_filetier_home_unset_writes_to_the_user_data_dir(tmp_path: Path) -> None:
    """As a new user: nothing of filetier's appears in $HOME itself."""
    user_home = tmp_path / "user"
    user_home.mkdir()
    src = tmp_path / "a.txt"
    src.write_text("hello\n")
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FILETIER_", "SUPABASE_", "XDG_")) and k != "DATABASE_URL"
    }
    environ.update({k: v for k, v in BARE.items() if v is not None and k != "PRIMARY_URL"})
    environ["HOME"] = str(user_home)

    up = subprocess.run(
        [*FILETIER, "upload", str(src), "--json"],
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=60,
    )

    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["size"] == 6
    assert sorted(p.name for p in user_home.iterdir()) == [".local"]
    data = user_home / ".local" / "share" / "filetier"
    assert (data / "filetier.db").is_file()
    assert (data / "objects").is_dir()


@pytest.mark.parametrize(
    ("given", "expected"),
    [("1048576", 1048576), ("64MiB", 64 * 1024**2), ("2GB", 2 * 1000**3), ("10k", 10_000)],
)
def test_sizes_accept_bytes_and_suffixes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, given: str, expected: int
) -> None:
    monkeypatch.setenv("FILETIER_MAX_FILE_SIZE", given)
    settings = Settings(home=tmp_path, type_limits=f"image/*={given}")
    assert settings.max_file_size == expected
    assert settings.type_limits == (("image/*", expected),)


@pytest.mark.parametrize("given", ["-1", "lots", "5 parsecs"])
def test_a_size_that_is_no_size_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, given: str
) -> None:
    monkeypatch.setenv("FILETIER_MAX_FILE_SIZE", given)
    with pytest.raises(ValueError, match="not a size"):
        Settings(home=tmp_path)
