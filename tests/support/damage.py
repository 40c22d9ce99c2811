"""Damage done to stored files the way a disk does it: real bytes flipped in place."""

from __future__ import annotations

import stat
from pathlib import Path


def flip_byte(path: Path, offset: int = 0) -> None:
    """Corrupt one byte in place, keeping the size (bit rot, not truncation); flipping it
    again restores it."""
    path.chmod(path.stat().st_mode | stat.S_IWUSR)
    with path.open("r+b") as handle:
        handle.seek(offset)
        (byte,) = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte ^ 0xFF]))
