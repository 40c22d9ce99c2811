"""The architecture is checked by tools, not by good intentions.

- ``lint-imports`` keeps the layers contract in ``pyproject.toml``: every import in
  ``src/filetier`` (function-level and ``TYPE_CHECKING`` ones included) points down.
- No module in ``src/`` is longer than :data:`MAX_LINES`, except the ones in
  :data:`OVERSIZED`, each being split now; an entry that no longer needs the exemption
  must leave the list, so the list only shrinks.
- No two modules import each other, directly or through others (a grimp check).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import filetier

SRC = Path(filetier.__file__).resolve().parent
ROOT = SRC.parent.parent
MAX_LINES = 500
# Empty since issue 11's splits; a module that must grow past the limit is listed here with
# the reason, and the list can only shrink (see the last test).
OVERSIZED: frozenset[str] = frozenset()


def test_imports_keep_the_layers() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        # --no-cache: the answer is about the tree as it is, and nothing is left behind.
        [str(lint_imports), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _line_counts() -> dict[str, int]:
    return {
        path.relative_to(SRC).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in SRC.rglob("*.py")
    }


def test_no_module_over_the_line_limit() -> None:
    counts = _line_counts()
    too_long = {
        name: lines
        for name, lines in sorted(counts.items())
        if lines > MAX_LINES and name not in OVERSIZED
    }
    assert not too_long, f"split these modules (limit {MAX_LINES} lines): {too_long}"


def test_oversized_list_only_shrinks() -> None:
    counts = _line_counts()
    stale = sorted(name for name in OVERSIZED if counts.get(name, 0) <= MAX_LINES)
    assert not stale, f"remove from OVERSIZED in tests/test_layers.py (now split): {stale}"


def test_no_import_cycle_between_any_two_modules() -> None:
    """The layers contracts see packages; this sees every module: no two modules of
    ``src/filetier`` reach each other through imports (function-level and TYPE_CHECKING
    imports included), inside one package too."""
    import grimp

    graph = grimp.build_graph("filetier", include_external_packages=False)
    cycles = [
        (module, other)
        for module in sorted(graph.modules)
        for other in graph.find_modules_directly_imported_by(module)
        if other != module
        and graph.find_shortest_chain(importer=other, imported=module) is not None
    ]
    assert not cycles, f"import cycles (each pair reaches the other): {cycles}"
