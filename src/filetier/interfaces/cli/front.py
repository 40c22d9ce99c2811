"""The ``filetier`` script's entry: ``--version``, ``stat`` and ``ls`` answered before
typer loads when they can be.

Agents call ``--version`` to check that filetier is installed, and typer with its click
core is most of what that costs (~40 ms of ~60 ms). ``stat`` and ``ls`` go first to the
quick path (:mod:`filetier.interfaces.cli.quick`: the same answer from SQLite through the
standard library, ~0.4 s less), which answers only when it is certain to answer as the
normal path would. Everything else, and whatever the quick path declines, goes to
:func:`filetier.interfaces.cli.app.main` unchanged.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    args = sys.argv[1:]
    if args == ["--version"]:
        from filetier import __version__

        sys.stdout.write(f"filetier {__version__}\n")
        sys.stdout.flush()
        os._exit(0)
    if "stat" in args or "ls" in args:
        from filetier.interfaces.cli.quick import answer

        code = answer(args)
        if code is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    from filetier.interfaces.cli.app import main as run

    run(args)
