"""One error table: every class has its own row, is public, and is drawn in the module
docstring; every interface answers with the table's status, exit code and text."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import filetier
from filetier import errors
from filetier.errors import (
    ERROR_TABLE,
    MCP_RETRY_TEXT,
    FiletierError,
    ProviderRequestError,
    StorageRefusedError,
    StorageUnavailableError,
    mapping_for,
    mcp_text,
)

CLASSES = sorted(
    (
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, FiletierError) and cls.__module__ == errors.__name__
    ),
    key=lambda cls: cls.__name__,
)


def test_every_error_class_has_its_own_row() -> None:
    rows = [cls for cls, _ in ERROR_TABLE]
    assert len(rows) == len(set(rows))
    assert sorted(rows, key=lambda cls: cls.__name__) == CLASSES


def test_no_row_is_shadowed_by_a_base_above_it() -> None:
    # The first isinstance match wins: a base listed above a subclass would hide it.
    for i, (cls, row) in enumerate(ERROR_TABLE):
        assert not any(issubclass(cls, above) for above, _ in ERROR_TABLE[:i]), cls
        assert mapping_for(cls("x")) is row


def test_every_error_class_is_public() -> None:
    for cls in CLASSES:
        assert cls.__name__ in filetier.__all__
        assert getattr(filetier, cls.__name__) is cls


def test_the_docstring_draws_every_class() -> None:
    doc = errors.__doc__ or ""
    missing = [cls.__name__ for cls in CLASSES if f"── {cls.__name__}" not in doc]
    missing = [name for name in missing if name != "FiletierError"]
    assert missing == []
    assert doc.lstrip().splitlines()[0] and "\n    FiletierError\n" in doc


def test_refused_storage_is_not_retried_where_unavailable_storage_is() -> None:
    refused, unavailable = mapping_for(StorageRefusedError), mapping_for(StorageUnavailableError)
    assert not refused.retryable and unavailable.retryable
    assert refused.http_status != 503  # 503 tells a client to come back: settings must change
    assert refused.exit_code == unavailable.exit_code == 10


def test_a_provider_refusing_the_request_is_an_input_error() -> None:
    row = mapping_for(errors.ProviderInputError("kimi refused the request (HTTP 422)"))
    assert 400 <= row.http_status < 500 and row.exit_code == 2 and not row.retryable
    # Any other refusal (e.g. a provider that lost a file it had just accepted) is not the
    # caller's mistake: it stays an upstream error.
    other = mapping_for(ProviderRequestError("kimi lost the file it had just accepted"))
    assert other.http_status == 502 and other.exit_code == 15


def test_mcp_text_names_the_tool_and_says_when_to_retry() -> None:
    busy = mcp_text(errors.StoreBusyError("the content lock is held"), "upload_file")
    missing = mcp_text(errors.NotFoundError("no file 123"), "get_file")
    assert busy == MCP_RETRY_TEXT.format(tool="upload_file", message="the content lock is held")
    assert "may succeed later" in busy
    assert missing == "Error executing tool get_file: no file 123"


def test_version_is_one_string() -> None:
    from importlib.metadata import version

    assert version("filetier") == filetier.__version__


def test_http_answers_with_the_table_status(tmp_path: Path) -> None:
    from starlette.requests import Request
    from starlette.routing import Route

    from filetier import Settings
    from filetier.interfaces.app import build_app
    from tests.support.http import ALICE, TOKENS, ThreadServer

    app = build_app(Settings(home=tmp_path / "home", fsync=False, api_tokens=TOKENS))

    def raising(cls: type[FiletierError]) -> Any:
        async def endpoint(request: Request) -> Any:
            raise cls(f"{cls.__name__} raised on purpose")

        return endpoint

    app.router.routes += [Route(f"/v1/raise/{cls.__name__}", raising(cls)) for cls in CLASSES]
    with ThreadServer(app) as live:
        headers = {"Authorization": f"Bearer {ALICE}"}
        answers = {
            cls: httpx.get(f"{live.url}/v1/raise/{cls.__name__}", headers=headers)
            for cls in CLASSES
        }
    for cls, answer in answers.items():
        assert answer.status_code == mapping_for(cls).http_status, cls
        assert answer.json()["error"]["type"] == cls.__name__


@pytest.mark.parametrize("cls", [errors.ProviderRequestError, errors.DestinationExistsError])
def test_cli_exits_with_the_table_code(cls: type[FiletierError], tmp_path: Path) -> None:
    import subprocess

    code = (
        "import filetier.interfaces.cli.app as cli, filetier.errors as e\n"
        "@cli.app.command('boom')\n"
        f"def boom() -> None:\n    raise e.{cls.__name__}('refused on purpose')\n"
        "cli.main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "boom"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"FILETIER_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == mapping_for(cls).exit_code
    assert done.stderr.strip() == "error: refused on purpose"
