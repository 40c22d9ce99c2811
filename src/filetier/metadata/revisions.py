"""The newest schema revision, read from the migration files without Alembic or SQLAlchemy.

:meth:`filetier.metadata.database.Database.upgrade` asks it whether a database is already
at head (one plain query instead of loading Alembic), and the CLI's quick path
(:mod:`filetier.interfaces.cli.quick`) whether it may read a database at all: a schema
at any other revision is the normal path's to migrate or refuse.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

_REVISION_RE = re.compile(r"^(down_)?revision\b[^=]*=\s*(?:None|[\"']([^\"']+)[\"'])", re.M)


@functools.cache
def quick_head_revision() -> str | None:
    """The head revision read from the migration files' ``revision`` and
    ``down_revision`` lines without importing Alembic; None when that is not one plain
    chain (a merge, or a line this reading does not understand): ask Alembic then.
    ``tests/test_migrations.py`` checks it agrees with Alembic's head."""
    revisions: set[str] = set()
    parents: set[str] = set()
    versions = resources.files("filetier.metadata") / "migrations" / "versions"
    for entry in versions.iterdir():
        if not entry.name.endswith(".py") or entry.name.startswith("__"):
            continue
        found = _REVISION_RE.findall(entry.read_text(encoding="utf-8"))
        own = [rev for down, rev in found if not down]
        if len(own) != 1 or len(found) != 2:
            return None
        revisions.add(own[0])
        parents.update(rev for down, rev in found if down and rev)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None
