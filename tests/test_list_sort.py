"""``FileStore.list(sort=...)``: the orders the console's files page offers."""

from __future__ import annotations

import pytest

from filetier import FileStore
from filetier.errors import InvalidInputError


async def test_list_sorts_by_each_key_both_ways_and_pages_stably(store: FileStore) -> None:
    for name, data in (("b.txt", b"bb"), ("a.txt", b"aaaa"), ("c.txt", b"c")):
        await store.upload_file(data, filename=name)

    async def names(sort: str, **kwargs: int) -> list[str]:
        page = await store.list(sort=sort, **kwargs)  # type: ignore[arg-type]
        return [item.filename for item in page.items]

    assert await names("name") == ["a.txt", "b.txt", "c.txt"]
    assert await names("-name") == ["c.txt", "b.txt", "a.txt"]
    assert await names("size") == ["c.txt", "b.txt", "a.txt"]
    assert await names("-size") == ["a.txt", "b.txt", "c.txt"]
    assert await names("uploaded") == ["b.txt", "a.txt", "c.txt"]
    assert await names("-uploaded") == await names("-uploaded", limit=100)
    # Pages of one never repeat or skip a file.
    paged = [*await names("size", limit=1), *await names("size", limit=1, offset=1)]
    paged += await names("size", limit=1, offset=2)
    assert paged == ["c.txt", "b.txt", "a.txt"]
    # Never-read files sort after read ones when the most recent access comes first.
    first = (await store.list(sort="name")).items[0]
    await store.read_bytes(first.file_id)
    await store.flush()
    assert (await names("-accessed"))[0] == "a.txt"


async def test_list_refuses_an_unknown_sort(store: FileStore) -> None:
    with pytest.raises(InvalidInputError, match="sort must be one of"):
        await store.list(sort="owner")  # type: ignore[arg-type]
