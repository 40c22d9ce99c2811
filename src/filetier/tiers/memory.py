"""The memory tier: a byte-bounded LRU of verified content, keyed by SHA-256.

Entries are immutable ``bytes`` whose hash was checked when they entered, so a hit needs
no re-hash. Files above ``item_max_bytes`` never enter: one large file must not flush
every small one. All methods are synchronous and never await, so a hit costs no event
loop round trip.
"""

from __future__ import annotations

from collections import OrderedDict


class MemoryTier:
    def __init__(self, max_bytes: int, item_max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.item_max_bytes = min(item_max_bytes, max_bytes)
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0

    @property
    def size_bytes(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, sha256: object) -> bool:
        return sha256 in self._items

    def accepts(self, size: int) -> bool:
        return size <= self.item_max_bytes

    def get(self, sha256: str) -> bytes | None:
        data = self._items.get(sha256)
        if data is not None:
            self._items.move_to_end(sha256)
        return data

    def put(self, sha256: str, data: bytes) -> bool:
        """Keep ``data`` (already verified by the caller); False when it is too large."""
        if not self.accepts(len(data)):
            return False
        old = self._items.pop(sha256, None)
        if old is not None:
            self._size -= len(old)
        self._items[sha256] = data
        self._size += len(data)
        while self._size > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self._size -= len(evicted)
        return True

    def evict(self, sha256: str) -> bool:
        data = self._items.pop(sha256, None)
        if data is None:
            return False
        self._size -= len(data)
        return True

    def clear(self) -> int:
        freed = self._size
        self._items.clear()
        self._size = 0
        return freed
