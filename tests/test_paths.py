"""Download destinations: what is allowed, what is refused, and that refusals leave no trace."""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filetier.errors import PathNotAllowedError
from filetier.paths import AllowedRoots, SafeDestination, safe_filename

# --------------------------------------------------------------------------- helpers


def snapshot(directory: Path) -> dict[str, str | bytes]:
    """Everything under ``directory``: file bytes, symlink targets, directories."""
    result: dict[str, str | bytes] = {}
    for path in sorted(directory.rglob("*")):
        key = str(path.relative_to(directory))
        if path.is_symlink():
            result[key] = "symlink -> " + os.readlink(path)
        elif path.is_dir():
            result[key] = "dir"
        else:
            result[key] = path.read_bytes()
    return result


def assert_clear_refusal(error: PathNotAllowedError, shown: str | Path) -> None:
    """One actionable sentence naming the path and the rule, never a traceback."""
    message = str(error)
    assert repr(str(shown)) in message
    assert "inside the allowed root" in message
    assert "\n" not in message
    assert "Traceback" not in message


class Layout:
    """A root, a sibling that shares its name as a prefix, and an outside directory."""

    def __init__(self, base: Path) -> None:
        base = base.resolve()
        self.base = base
        self.root = base / "root"
        self.root.mkdir()
        self.evil = base / "root-evil"
        self.evil.mkdir()
        (self.evil / "secret").write_bytes(b"evil secret")
        self.outside = base / "outside"
        self.outside.mkdir()
        (self.outside / "passwd").write_bytes(b"outside original")
        self.roots = AllowedRoots([self.root])

    def untouched(self) -> dict[str, dict[str, str | bytes]]:
        return {"evil": snapshot(self.evil), "outside": snapshot(self.outside)}


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path)


# --------------------------------------------------------------------------- allowed


def test_relative_destination_lands_in_first_root_not_cwd(
    layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(layout.outside)
    before = layout.untouched()

    dest = layout.roots.resolve_destination("report.pdf", default_name="ignored.bin")
    dest.write_bytes(b"%PDF-1.7")

    assert dest.path == layout.root / "report.pdf"
    assert (layout.root / "report.pdf").read_bytes() == b"%PDF-1.7"
    assert layout.untouched() == before


def test_absolute_destination_inside_root(layout: Layout) -> None:
    target = layout.root / "data.csv"
    layout.roots.resolve_destination(str(target), default_name="x").write_bytes(b"a,b\n")
    assert target.read_bytes() == b"a,b\n"


def test_missing_nested_directories_are_created(layout: Layout) -> None:
    dest = layout.roots.resolve_destination("a/b/c/deep.txt", default_name="x")
    assert not (layout.root / "a").exists()  # nothing is created before the write

    dest.write_bytes(b"deep")

    assert (layout.root / "a" / "b" / "c" / "deep.txt").read_bytes() == b"deep"
    # only the file itself is left behind, no temp files
    assert sorted(p.name for p in (layout.root / "a" / "b" / "c").iterdir()) == ["deep.txt"]


def test_none_destination_uses_first_root_and_sanitised_default_name(layout: Layout) -> None:
    dest = layout.roots.resolve_destination(None, default_name="../../etc/pass\x00wd\u202e")
    dest.write_bytes(b"x")
    assert dest.path == layout.root / "passwd"
    assert (layout.root / "passwd").read_bytes() == b"x"
    assert (layout.outside / "passwd").read_bytes() == b"outside original"


def test_existing_directory_destination_gets_default_name(layout: Layout) -> None:
    (layout.root / "inbox").mkdir()
    dest = layout.roots.resolve_destination("inbox", default_name="photo:1.jpg")
    dest.write_bytes(b"jpg")
    assert (layout.root / "inbox" / "photo_1.jpg").read_bytes() == b"jpg"


@pytest.mark.parametrize("spelling", ["new-dir/", "new-dir/."])
def test_trailing_separator_means_directory_even_if_missing(layout: Layout, spelling: str) -> None:
    layout.roots.resolve_destination(spelling, default_name="a.txt").write_bytes(b"1")
    assert (layout.root / "new-dir" / "a.txt").read_bytes() == b"1"


@pytest.mark.parametrize("spelling", [".", "ROOT", "ROOT/"])
def test_the_root_itself_is_a_directory_target(layout: Layout, spelling: str) -> None:
    destination = spelling.replace("ROOT", str(layout.root))
    dest = layout.roots.resolve_destination(destination, default_name="a.txt")
    assert dest.path == layout.root / "a.txt"


def test_existing_file_is_replaced_and_hard_link_outside_is_not_written_through(
    layout: Layout,
) -> None:
    outside_file = layout.outside / "passwd"
    os.link(outside_file, layout.root / "linked.txt")  # same inode as the outside file
    dest = layout.roots.resolve_destination("linked.txt", default_name="x")

    dest.write_bytes(b"new content", overwrite=True)

    assert (layout.root / "linked.txt").read_bytes() == b"new content"
    assert outside_file.read_bytes() == b"outside original"


def test_symlink_inside_root_pointing_inside_root_is_followed(layout: Layout) -> None:
    (layout.root / "real").mkdir()
    (layout.root / "alias").symlink_to(layout.root / "real")

    dest = layout.roots.resolve_destination("alias/f.txt", default_name="x")
    dest.write_bytes(b"via alias")

    assert dest.path == layout.root / "real" / "f.txt"
    assert (layout.root / "real" / "f.txt").read_bytes() == b"via alias"
    # a link to a directory inside the root also works as a directory destination
    dest2 = layout.roots.resolve_destination("alias", default_name="g.txt")
    assert dest2.path == layout.root / "real" / "g.txt"


def test_second_root_works_and_roots_are_created_lazily(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    roots = AllowedRoots([first, second])
    assert not first.exists()
    assert not second.exists()

    roots.resolve_destination(str(second / "x.bin"), default_name="x").write_bytes(b"2")

    assert (second / "x.bin").read_bytes() == b"2"
    assert not first.exists()  # only the root that was used is created


def test_path_in_neither_root_is_refused(tmp_path: Path) -> None:
    roots = AllowedRoots([tmp_path / "first", tmp_path / "second"])
    target = tmp_path / "third" / "x.bin"
    with pytest.raises(PathNotAllowedError) as info:
        roots.resolve_destination(str(target), default_name="x")
    assert_clear_refusal(info.value, target)
    assert "second" in str(info.value)  # the message lists every allowed root
    assert not (tmp_path / "third").exists()


def test_roots_are_expanded_and_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "real").mkdir()
    (tmp_path / "via-link").symlink_to(tmp_path / "real")
    roots = AllowedRoots([Path("~/via-link")])
    assert roots.roots == ((tmp_path / "real").resolve(),)


def test_is_allowed_and_contains(layout: Layout) -> None:
    assert layout.roots.is_allowed("sub/file")
    assert str(layout.root / "x") in layout.roots
    assert layout.root / "x" in layout.roots
    assert str(layout.root) not in layout.roots  # the root itself is not a file location
    assert str(layout.evil / "secret") not in layout.roots
    assert "../outside/passwd" not in layout.roots
    assert "a\x00b" not in layout.roots
    assert 42 not in layout.roots
    (layout.root / "link").symlink_to(layout.outside)
    assert "link/passwd" not in layout.roots


# --------------------------------------------------------------------------- refused


def test_nul_byte_is_refused(layout: Layout) -> None:
    with pytest.raises(PathNotAllowedError) as info:
        layout.roots.resolve_destination("evil\x00.txt", default_name="x")
    assert_clear_refusal(info.value, "evil\x00.txt")
    assert "NUL" in str(info.value)
    assert list(layout.root.iterdir()) == []


def test_empty_destination_is_refused(layout: Layout) -> None:
    with pytest.raises(PathNotAllowedError) as info:
        layout.roots.resolve_destination("", default_name="x")
    assert_clear_refusal(info.value, "")
    assert "empty" in str(info.value)


@pytest.mark.parametrize(
    "destination",
    ["../x", "sub/../../x", "sub/../x", "../outside/passwd", "ROOT/../outside/passwd", ".."],
)
def test_dotdot_is_refused_before_resolving(layout: Layout, destination: str) -> None:
    destination = destination.replace("ROOT", str(layout.root))
    before = layout.untouched()
    with pytest.raises(PathNotAllowedError) as info:
        layout.roots.resolve_destination(destination, default_name="x")
    assert_clear_refusal(info.value, destination)
    assert "'..'" in str(info.value)
    assert layout.untouched() == before
    assert list(layout.root.iterdir()) == []


def test_absolute_path_outside_is_refused(layout: Layout) -> None:
    before = layout.untouched()
    target = layout.outside / "passwd"
    with pytest.raises(PathNotAllowedError) as info:
        layout.roots.resolve_destination(str(target), default_name="x")
    assert_clear_refusal(info.value, target)
    assert layout.untouched() == before


def test_sibling_sharing_the_root_prefix_is_refused_cve_2025_53110(layout: Layout) -> None:
    # "<root>-evil/secret" starts with "<root>" as a string but is not inside it.
    target = f"{layout.root}-evil/secret"
    assert target.startswith(str(layout.root))
    before = layout.untouched()

    with pytest.raises(PathNotAllowedError) as info:
        layout.roots.resolve_destination(target, default_name="x")

    assert_clear_refusal(info.value, target)
    assert (layout.evil / "secret").read_bytes() == b"evil secret"
    assert layout.untouched() == before


def test_symlink_to_outside_directory_is_refused_cve_2025_53109(layout: Layout) -> None:
    (layout.root / "link").symlink_to(layout.outside)
    before = layout.untouched()

    for destination in ["link/file", "link/passwd", "link", "link/"]:
        with pytest.raises(PathNotAllowedError) as info:
            layout.roots.resolve_destination(destination, default_name="passwd")
        assert_clear_refusal(info.value, destination)

    assert layout.untouched() == before
    assert not (layout.outside / "file").exists()


def test_symlink_to_outside_file_is_refused_and_file_unchanged(layout: Layout) -> None:
    (layout.root / "link").symlink_to(layout.outside / "passwd")
    before = layout.untouched()

    with pytest.raises(PathNotAllowedError) as info:
        layout.roots.resolve_destination("link", default_name="x")

    assert_clear_refusal(info.value, "link")
    assert "symbolic link" in str(info.value)
    assert (layout.outside / "passwd").read_bytes() == b"outside original"
    assert layout.untouched() == before


def test_symlink_even_to_a_file_inside_the_root_is_never_written_through(layout: Layout) -> None:
    (layout.root / "target.txt").write_bytes(b"original")
    (layout.root / "link.txt").symlink_to(layout.root / "target.txt")
    with pytest.raises(PathNotAllowedError) as info:
        layout.roots.resolve_destination("link.txt", default_name="x")
    assert "symbolic link" in str(info.value)
    assert (layout.root / "target.txt").read_bytes() == b"original"


def test_default_name_that_is_a_symlink_or_directory_is_refused(layout: Layout) -> None:
    (layout.root / "inbox").mkdir()
    (layout.root / "inbox" / "a.txt").symlink_to(layout.outside / "passwd")
    (layout.root / "inbox" / "b.txt").mkdir()
    before = layout.untouched()
    for name in ["a.txt", "b.txt"]:
        with pytest.raises(PathNotAllowedError) as info:
            layout.roots.resolve_destination("inbox", default_name=name)
        assert_clear_refusal(info.value, "inbox")
    (layout.root / "download.bin").symlink_to(layout.outside / "passwd")
    with pytest.raises(PathNotAllowedError) as info:
        layout.roots.resolve_destination(None, default_name="download.bin")
    assert_clear_refusal(info.value, layout.root / "download.bin")
    assert layout.untouched() == before
    assert (layout.root / "inbox" / "b.txt").is_dir()


def test_file_used_as_directory_is_refused(layout: Layout) -> None:
    (layout.root / "plain.txt").write_bytes(b"keep")
    with pytest.raises(PathNotAllowedError) as info:
        layout.roots.resolve_destination("plain.txt/", default_name="x")
    assert_clear_refusal(info.value, "plain.txt/")
    with pytest.raises(PathNotAllowedError):
        layout.roots.resolve_destination("plain.txt/inner", default_name="x").write_bytes(b"!")
    assert (layout.root / "plain.txt").read_bytes() == b"keep"


def test_symlink_loop_is_refused_not_crashing(layout: Layout) -> None:
    (layout.root / "loop").symlink_to(layout.root / "loop")
    for destination in ["loop", "loop/x"]:
        with pytest.raises(PathNotAllowedError) as info:
            layout.roots.resolve_destination(destination, default_name="x")
        assert_clear_refusal(info.value, destination)


def test_overlong_component_is_refused_with_a_message(layout: Layout) -> None:
    destination = "a" * 300 + ".txt"
    with pytest.raises(PathNotAllowedError) as info:
        layout.roots.resolve_destination(destination, default_name="x")
    assert "255 bytes" in str(info.value)
    assert "inside the allowed root" in str(info.value)


def test_hand_built_destination_outside_its_root_is_refused(layout: Layout) -> None:
    with pytest.raises(PathNotAllowedError):
        SafeDestination(root=layout.root, path=layout.root)  # the root itself as a file
    with pytest.raises(PathNotAllowedError):
        SafeDestination(root=layout.root, path=layout.evil / "secret")
    with pytest.raises(PathNotAllowedError):
        SafeDestination(root=layout.root, path=layout.root / ".." / "outside" / "passwd")


# --------------------------------------------------------------------------- TOCTOU


def test_parent_swapped_for_symlink_after_check_is_refused(layout: Layout) -> None:
    (layout.root / "sub").mkdir()
    dest = layout.roots.resolve_destination("sub/f.txt", default_name="x")
    # The attacker swaps the checked directory for a symlink to the outside.
    (layout.root / "sub").rmdir()
    (layout.root / "sub").symlink_to(layout.outside)
    before = layout.untouched()

    with pytest.raises(PathNotAllowedError) as info:
        dest.open_parent()
    assert_clear_refusal(info.value, dest.path)
    assert "'sub'" in str(info.value)

    with pytest.raises(PathNotAllowedError):
        dest.write_bytes(b"stolen")
    assert layout.untouched() == before
    assert not (layout.outside / "f.txt").exists()


def test_missing_parent_replaced_by_symlink_before_creation_is_refused(layout: Layout) -> None:
    dest = layout.roots.resolve_destination("new/deeper/f.txt", default_name="x")
    (layout.root / "new").symlink_to(layout.outside)
    before = layout.untouched()

    with pytest.raises(PathNotAllowedError):
        dest.write_bytes(b"stolen")

    assert layout.untouched() == before
    assert not (layout.outside / "deeper").exists()


def test_final_name_swapped_for_symlink_before_publish_is_refused(layout: Layout) -> None:
    dest = layout.roots.resolve_destination("f.txt", default_name="x")
    parent_fd = dest.open_parent()
    try:
        fd, temp_name = dest.create_temp(parent_fd)
        os.write(fd, b"payload")
        os.close(fd)
        (layout.root / "f.txt").symlink_to(layout.outside / "passwd")
        with pytest.raises(PathNotAllowedError) as info:
            dest.publish(parent_fd, temp_name)
    finally:
        os.close(parent_fd)
    assert_clear_refusal(info.value, dest.path)
    assert (layout.outside / "passwd").read_bytes() == b"outside original"
    assert sorted(p.name for p in layout.root.iterdir()) == ["f.txt"]  # temp removed


def test_final_name_turned_into_directory_before_write_is_refused(layout: Layout) -> None:
    dest = layout.roots.resolve_destination("f.txt", default_name="x")
    (layout.root / "f.txt").mkdir()
    (layout.root / "f.txt" / "keep").write_bytes(b"keep")

    with pytest.raises(PathNotAllowedError) as info:
        dest.write_bytes(b"x")

    assert "directory" in str(info.value)
    assert (layout.root / "f.txt" / "keep").read_bytes() == b"keep"
    assert sorted(p.name for p in layout.root.iterdir()) == ["f.txt"]


def test_low_level_protocol_temp_file_then_publish(layout: Layout) -> None:
    dest = layout.roots.resolve_destination("out/data.bin", default_name="x")
    parent_fd = dest.open_parent()
    try:
        fd, temp_name = dest.create_temp(parent_fd)
        assert temp_name.startswith(".data.bin.")
        assert temp_name.endswith(".tmp")
        assert (layout.root / "out" / temp_name).exists()
        assert not (layout.root / "out" / "data.bin").exists()  # invisible until published
        os.write(fd, b"payload")
        os.close(fd)
        dest.publish(parent_fd, temp_name)
        dest.discard(parent_fd, temp_name)  # already gone: no error

        fd2, temp2 = dest.create_temp(parent_fd)
        os.close(fd2)
        dest.discard(parent_fd, temp2)
    finally:
        os.close(parent_fd)
    assert (layout.root / "out" / "data.bin").read_bytes() == b"payload"
    assert sorted(p.name for p in (layout.root / "out").iterdir()) == ["data.bin"]
    mode = stat.S_IMODE((layout.root / "out" / "data.bin").stat().st_mode)
    assert mode & 0o077 in (0o044, 0o004, 0o040, 0o000)  # 0o644 minus umask, never wider
    assert not mode & 0o111


def test_temp_name_of_a_maximal_name_still_fits(layout: Layout) -> None:
    name = "é" * 127  # 254 bytes: the final name fits, ".<name>.<hex>.tmp" would not
    dest = layout.roots.resolve_destination(name, default_name="x")
    dest.write_bytes(b"long")
    assert (layout.root / name).read_bytes() == b"long"


# --------------------------------------------------------------------------- safe_filename


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\evil.bat", "evil.bat"),
        ("dir/name/", "name"),
        ("a\x00b.txt", "ab.txt"),
        ("line\nbreak\r.txt", "linebreak.txt"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),
        ("zero\u200bwidth.txt", "zerowidth.txt"),
        ('a<b>:"c|?*.txt', "a_b___c___.txt"),
        ("CON", "_CON"),
        ("con", "_con"),
        ("nul.txt", "_nul.txt"),
        ("LPT1", "_LPT1"),
        ("com9.tar.gz", "_com9.tar.gz"),
        ("Aux .txt", "_Aux .txt"),
        ("CONSOLE.txt", "CONSOLE.txt"),
        ("icon.png", "icon.png"),
        ("COM10", "COM10"),
        ("..", "file"),
        (".", "file"),
        ("", "file"),
        (" . .. ", "file"),
        ("/", "file"),
        (".hidden", "hidden"),
        ("  name.txt. ", "name.txt"),
        ("日本語.txt", "日本語.txt"),
    ],
)
def test_safe_filename_cases(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_safe_filename_fallback_is_used_and_itself_sanitised() -> None:
    assert safe_filename("", fallback="download.bin") == "download.bin"
    assert safe_filename("..", fallback="../x/y.bin") == "y.bin"
    assert safe_filename("\x00", fallback="") == "file"


def test_safe_filename_4kib_name_is_capped_and_keeps_extension() -> None:
    result = safe_filename("a" * 4096 + ".txt")
    assert len(result.encode()) == 255
    assert result == "a" * 251 + ".txt"


def test_safe_filename_cut_never_splits_a_multibyte_character() -> None:
    two_byte = safe_filename("é" * 200 + ".pdf")  # 404 bytes
    assert two_byte == "é" * 125 + ".pdf"  # 254 bytes: a 126th "é" would need 256
    four_byte = safe_filename("😀" * 100)  # 400 bytes, no extension
    assert four_byte == "😀" * 63  # 252 bytes
    mixed = safe_filename("a" + "€" * 100 + ".md")  # "€" is 3 bytes
    assert len(mixed.encode()) <= 255
    assert mixed.endswith("€.md")
    assert mixed.encode().decode() == mixed


def test_safe_filename_long_extension_is_not_kept() -> None:
    result = safe_filename("a" * 300 + "." + "b" * 20)
    assert result == "a" * 255


def test_safe_filename_cut_does_not_leave_a_trailing_dot() -> None:
    result = safe_filename("a" * 254 + ". " + "b" * 40)
    assert result == "a" * 254


# --------------------------------------------------------------------------- properties

_FRAGMENTS = [
    "/",
    "//",
    "..",
    ".",
    "\x00",
    "\\",
    "~",
    " ",
    "a",
    "sub",
    "file.txt",
    "link",
    "inner",
    "loop",
    "root",
    "root-evil",
    "outside",
    "é",
    "\u202e",
    "😀",
]
_TEMP_NAME = re.compile(r"^\..*\.[0-9a-f]{16}\.tmp$")
_PREFIXES = ["", "", "ROOT/", "ROOT-evil/", "BASE/", "/", "~/"]
_destinations = st.tuples(
    st.sampled_from(_PREFIXES),
    st.one_of(
        st.text(max_size=30),
        st.lists(st.sampled_from(_FRAGMENTS), max_size=10).map("".join),
    ),
)


def _property_layout(base: Path) -> Layout:
    base.mkdir()
    layout = Layout(base)
    (layout.root / "sub").mkdir()
    (layout.root / "file.txt").write_bytes(b"inside original")
    (layout.root / "link").symlink_to(layout.outside)
    (layout.root / "inner").symlink_to(layout.root / "sub")
    (layout.root / "loop").symlink_to(layout.root / "loop")
    return layout


def _spell_for(base: Path, prefix: str, rest: str) -> str:
    prefix = prefix.replace("ROOT", str(base / "root")).replace("BASE", str(base))
    return prefix + rest


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(parts=_destinations)
def test_property_resolve_is_refused_or_strictly_inside(
    tmp_path: Path, parts: tuple[str, str]
) -> None:
    # tmp_path is shared by all examples: build the layout once, resolving creates nothing.
    base = (tmp_path / "resolve").resolve()
    if not base.exists():
        _property_layout(base)
    root = base / "root"
    roots = AllowedRoots([root])
    destination = _spell_for(base, *parts)
    try:
        dest = roots.resolve_destination(destination, default_name="download.bin")
    except PathNotAllowedError as error:
        assert "inside the allowed root" in str(error)
        assert "\n" not in str(error)
        return
    assert dest.path.is_relative_to(root)
    assert dest.path != root
    assert dest.root == root
    assert ".." not in dest.path.parts


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(parts=_destinations)
def test_property_writes_never_leave_the_root(tmp_path: Path, parts: tuple[str, str]) -> None:
    base = (tmp_path / "write").resolve()
    if not base.exists():
        _property_layout(base)
    root = base / "root"
    roots = AllowedRoots([root])
    outside_before = {"evil": snapshot(base / "root-evil"), "outside": snapshot(base / "outside")}
    destination = _spell_for(base, *parts)
    try:
        dest = roots.resolve_destination(destination, default_name="download.bin")
        # overwrite: some spellings name a file of the layout; containment is the point here.
        dest.write_bytes(b"payload", overwrite=True)
    except PathNotAllowedError:
        pass
    else:
        assert dest.path.is_relative_to(root)
        assert dest.path.read_bytes() == b"payload"
    assert {
        "evil": snapshot(base / "root-evil"),
        "outside": snapshot(base / "outside"),
    } == outside_before
    assert not any(_TEMP_NAME.match(p.name) for p in root.rglob("*"))  # no temp left behind


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=600), fallback=st.text(max_size=20))
def test_property_safe_filename_is_always_a_safe_single_name(name: str, fallback: str) -> None:
    result = safe_filename(name, fallback=fallback)
    assert result
    assert result not in {".", ".."}
    assert "/" not in result
    assert "\\" not in result
    assert "\x00" not in result
    assert not any(unicodedata.category(ch) in {"Cc", "Cf", "Cs"} for ch in result)
    assert len(result.encode("utf-8")) <= 255
    assert result == result.strip(" .")
    assert safe_filename(result) == result  # idempotent: a safe name stays as it is
