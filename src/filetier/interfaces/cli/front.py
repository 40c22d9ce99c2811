"""The ``filetier`` script's entry: ``filetier --version`` answered before typer loads.

Everything else goes to :func:`filetier.interfaces.cli.app.main` unchanged. Agents call
``--version`` to check that filetier is installed, and typer with its click core is most
of what that costs (~40 ms of ~60 ms).
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
    from filetier.interfaces.cli.app import main as run

    run(args)
