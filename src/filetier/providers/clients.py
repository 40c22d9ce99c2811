"""The provider clients this process holds, shared by every owner, and the end of copies.

One client per provider name, built on first use from the settings. Ending provider
copies is here because it is not any one owner's act: when content ends (a delete, gc,
verify), the copies of every owner who no longer has a file with it go.
"""

from __future__ import annotations

import logging

from filetier.config import Settings
from filetier.errors import FiletierError, ProviderRequestError
from filetier.metadata.provider_repository import ProviderCopy, ProviderRepository
from filetier.providers.base import Provider
from filetier.providers.registry import build_provider, configured_names
from filetier.singleflight import SingleFlight

log = logging.getLogger(__name__)


class ProviderClients:
    def __init__(self, settings: Settings, repo: ProviderRepository) -> None:
        self.settings = settings
        self.repo = repo
        self._clients: dict[str, Provider] = {}
        # In flight across every owner of this process: one upload of a (owner, content,
        # provider, account, purpose), one extraction of a text.
        self.uploads: SingleFlight[ProviderCopy] = SingleFlight()
        self.texts: SingleFlight[tuple[str, str]] = SingleFlight()

    def provider(self, name: str) -> Provider:
        key = name.lower()
        if key not in self._clients:
            self._clients[key] = build_provider(key, self.settings)
        return self._clients[key]

    def configured(self) -> list[str]:
        return configured_names(self.settings)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def forget_content(self, sha256: str) -> int:
        """Delete the provider copies of this content whose owner no longer has a file
        with it (all of them once no file does), and their extracted text."""
        ties = await self.repo.ties_of(sha256)
        keep = ties.file_owners
        removed = 0
        for copy in ties.copies:
            if copy.owner in keep:
                continue
            if copy.status not in ("active", "pending_delete"):
                await self.repo.remove(copy)
                continue
            try:
                client = self.provider(copy.provider)
                if client.account != copy.account:
                    raise ProviderRequestError("the copy belongs to another account")
                await client.delete(copy.provider_file_id)
            except FiletierError as exc:
                log.warning(
                    "could not delete %s copy %s now (%s); `filetier providers sync` will",
                    copy.provider,
                    copy.provider_file_id,
                    exc,
                )
                await self.repo.set_status(copy, "pending_delete")
                continue
            await self.repo.remove(copy)
            removed += 1
        await self.repo.forget_text(sha256, ties.text_owners - keep)
        return removed
