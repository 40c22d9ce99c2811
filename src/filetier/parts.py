"""The collaborators of one open store, wired once over its :class:`~filetier.core.Core`.

Built when a ``FileStore`` opens and shared by every owner's facade over it
(:meth:`filetier.store.FileStore.as_owner`). The arrows point down only::

    store (facade) -> parts -> delivery -> reading -> records -> core
                            -> writing  -> ending  -> providers.clients
                            -> usage, catalog, maintenance, providers.uploads/asking/sync
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from filetier.core import Core
from filetier.delivery import Delivery
from filetier.ending import ContentEnd
from filetier.errors import StoreClosedError
from filetier.providers.clients import ProviderClients
from filetier.reading import ReadPath
from filetier.records import RecordCache
from filetier.usage import Usage
from filetier.writing import Writer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Lifecycle:
    """Whether the store is open, and who listens for changes to its files."""

    state: Literal["open", "closed"] = "open"
    listeners: dict[object, Callable[[str], None]] = field(default_factory=dict)

    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(owner)`` after each commit that adds or removes a file, with
        the file's owner (every owner's: the subscriber filters). It runs on the event
        loop and must neither block nor raise. Returns the function that unsubscribes."""
        token = object()
        self.listeners[token] = callback
        return lambda: self.listeners.pop(token, None) and None

    def announce(self, owner: str) -> None:
        for callback in list(self.listeners.values()):
            try:
                callback(owner)
            except Exception:  # a subscriber's bug must not fail a committed change
                log.exception("files-changed subscriber failed")


@dataclass(frozen=True, slots=True)
class Parts:
    core: Core
    operator: str  # the owner of the store this process opened
    records: RecordCache
    reads: ReadPath
    ending: ContentEnd
    writer: Writer
    usage: Usage
    delivery: Delivery
    clients: ProviderClients
    life: Lifecycle


def require_open(parts: Parts | None) -> Parts:
    """The parts of a store that is open; StoreClosedError otherwise."""
    if parts is None or parts.life.state != "open":
        raise StoreClosedError(
            "this FileStore is closed; open a new one with `async with FileStore(...)`"
            if parts is not None
            else "this FileStore is not open yet: use `async with FileStore(...) as store`"
        )
    return parts


def build_parts(core: Core, operator: str) -> Parts:
    records = RecordCache(core.settings, core.repo, core.provider_repo)
    reads = ReadPath(core, records)
    clients = ProviderClients(core.settings, core.provider_repo)
    ending = ContentEnd(core, records, clients)
    usage = Usage(core, operator)
    return Parts(
        core=core,
        operator=operator,
        records=records,
        reads=reads,
        ending=ending,
        writer=Writer(core, records, ending),
        usage=usage,
        delivery=Delivery(core, records, reads, usage),
        clients=clients,
        life=Lifecycle(),
    )


async def close_parts(parts: Parts) -> None:
    """Finish background work, write bookkeeping, close clients, tiers and database."""
    core = parts.core
    await core.background.settle()
    parts.life.state = "closed"
    await parts.records.close()
    try:
        await core.repo.settle()
        await core.recorder.close()
    finally:
        parts.delivery.close()
        await parts.clients.close()
        await core.primary.close()
        await core.db.close()
