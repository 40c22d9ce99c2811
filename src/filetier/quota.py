"""Per-owner quotas: one rule, checked twice.

An upload is refused early, before any byte is staged, when the owner is already over
quota (a cheap read, a clear error at once). That early check cannot hold the line
alone: sixteen concurrent uploads all read "2 of 3 files" and all pass. The binding
check runs again inside the transaction that inserts the file row, serialized per
owner (SQLite: the write transaction is ``BEGIN IMMEDIATE``; PostgreSQL: a
transaction-scoped advisory lock on the owner, shared by every host on the database),
so the count it reads is the count the insert changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from filetier.errors import QuotaExceededError


@dataclass(frozen=True, slots=True)
class OwnerQuota:
    """An owner's limits; ``None`` is no limit."""

    owner: str
    max_files: int | None
    max_bytes: int | None

    @property
    def limited(self) -> bool:
        return self.max_files is not None or self.max_bytes is not None

    def check(self, files: int, used: int, incoming: int) -> None:
        """Raise when one more file of ``incoming`` bytes would exceed the quota."""
        if self.max_files is not None and files + 1 > self.max_files:
            raise QuotaExceededError(
                f"owner {self.owner!r} already stores {files} files, the quota is "
                f"{self.max_files}: delete files to make room"
            )
        if self.max_bytes is not None and used + incoming > self.max_bytes:
            raise QuotaExceededError(
                f"owner {self.owner!r} stores {used:,} bytes; {incoming:,} more would exceed the "
                f"quota of {self.max_bytes:,} bytes: delete files to make room"
            )
