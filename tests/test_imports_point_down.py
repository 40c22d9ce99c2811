"""Every import in the repository's Python points down the layers, function-level ones too.

::

    tests/ test modules   the suites; import nothing from one another
      tests/support/      helpers the test modules share (servers, MCP client, child procs)
    bench/                benchmarks (scripts)
      reliability/        the reliability suites, a library the short CI tests call
        testbed/          services all three run against: PostgreSQL, S3, loopback providers
          filetier        the product (src/filetier), which imports none of the above

A layer imports only itself and the layers drawn below it; ``tests/support`` and the test
modules may use ``reliability`` and ``testbed``, ``bench`` may not use ``tests``. The file
is parsed with ``ast`` rather than imported, so an import hidden in a function (the way the
old ``tests`` <-> ``reliability`` <-> ``bench`` circle was hidden) counts like any other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Which layers each layer may import (itself included). Order matters for lookup only:
# the most specific prefix of a module's name decides its layer.
ALLOWED: dict[str, set[str]] = {
    "filetier": {"filetier"},
    "testbed": {"filetier", "testbed"},
    "reliability": {"filetier", "testbed", "reliability"},
    "bench": {"filetier", "testbed", "reliability", "bench"},
    "tests.support": {"filetier", "testbed", "reliability", "tests.support"},
    "tests": {"filetier", "testbed", "reliability", "tests.support"},
}
TOP_LEVEL = {"filetier", "testbed", "reliability", "bench", "tests"}


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO / "src" if path.is_relative_to(REPO / "src") else REPO)
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> list[Path]:
    roots = [REPO / "src" / "filetier", *(REPO / name for name in sorted(TOP_LEVEL - {"filetier"}))]
    return sorted(p for root in roots for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def layer_of(module: str) -> str | None:
    if module == "tests.support" or module.startswith("tests.support."):
        return "tests.support"
    top = module.split(".", 1)[0]
    return top if top in TOP_LEVEL else None


def is_test_module(module: str) -> bool:
    leaf = module.rsplit(".", 1)[-1]
    return module.startswith("tests.") and (leaf.startswith("test_") or leaf == "conftest")


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module) for every import in the file, at any depth.

    A bare name that is a sibling file (``_table`` in bench/, ``_child`` beside the child
    scripts: those directories run as scripts, so their siblings are on ``sys.path``) is
    resolved to its package path, so it is judged like any other import."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    siblings = {p.stem for p in path.parent.glob("*.py")}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                names = [".".join([*base, node.module] if node.module else base)]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            first = name.split(".", 1)[0]
            if first in siblings and first not in TOP_LEVEL:
                name = f"{package}.{name}"
            yield node.lineno, name


def violations() -> list[str]:
    found: list[str] = []
    for path in sources():
        here = module_name(path)
        mine = layer_of(here)
        assert mine is not None, here
        for line, target in imports(path):
            theirs = layer_of(target)
            if theirs is None:
                continue  # the standard library or a third-party package
            where = f"{path.relative_to(REPO)}:{line} imports {target}"
            if is_test_module(target):
                found.append(f"{where}: a test module is not a library (use tests/support)")
            elif theirs not in ALLOWED[mine]:
                found.append(f"{where}: {mine} may import only {sorted(ALLOWED[mine])}")
    return found


def test_every_import_points_down_the_layers() -> None:
    assert violations() == []


def test_the_checker_sees_function_level_and_sibling_imports() -> None:
    # The rules above are only worth something if the parser finds what they judge.
    reliability = REPO / "reliability" / "faults.py"
    found = {name for _, name in imports(reliability)}
    assert "testbed.services" in found  # imported inside a function there
    bench = {name for _, name in imports(REPO / "bench" / "bench_core.py")}
    assert "bench._table" in bench
    assert layer_of("tests.support.procs._child") == "tests.support"
    assert is_test_module("tests.test_http_api") and is_test_module("tests.reliability.test_x")
    assert not is_test_module("tests.support.http")


@pytest.mark.parametrize(
    ("layer", "target"),
    [
        ("reliability", "tests.support.http"),
        ("bench", "tests.support.procs"),
        ("testbed", "reliability.proxy"),
        ("filetier", "testbed.services"),
        ("tests.support", "bench.bench_core"),
    ],
)
def test_an_upward_import_is_refused(layer: str, target: str) -> None:
    theirs = layer_of(target)
    assert theirs is not None and theirs not in ALLOWED[layer]
