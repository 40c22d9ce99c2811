"""Which provider copy a provider file id (``file-abc…``) names, for one owner.

Below the record cache and the read path: a download or a record lookup may name a
provider's file id instead of filetier's, and only the asking owner's copies answer.
"""

from __future__ import annotations

from filetier.errors import OriginalNotAvailableError
from filetier.metadata.provider_repository import ProviderCopy, ProviderRepository
from filetier.providers.registry import SPECS


async def resolve_copy(
    repo: ProviderRepository, owner: str, *, operator: bool, provider_file_id: str
) -> ProviderCopy | None:
    """The copy a provider file id names, if it is ``owner``'s (another owner's copy gets
    the same answer as an id filetier never saw). ``operator``: the provider account is
    the operator's, so only the operator learns about files filetier never uploaded."""
    for copy in await repo.by_provider_file_id(provider_file_id):
        if copy.file_hash is not None and copy.owner == owner:
            return copy
    if not operator:
        return None
    for copy in await repo.by_provider_file_id(provider_file_id):
        if copy.file_hash is not None:
            continue  # another owner's copy: not the operator's to name either
        spec = SPECS.get(copy.provider)
        if spec is not None and not spec.offers_text:
            raise OriginalNotAvailableError(
                f"{provider_file_id} is a {copy.provider} file that filetier never "
                f"uploaded, so filetier holds no bytes of it, and {copy.provider} offers "
                "no text of it either"
            )
        raise OriginalNotAvailableError(
            f"{provider_file_id} is a {copy.provider} file that filetier never uploaded; "
            f"{copy.provider} returns extracted text, not the original bytes: ask for "
            f"its text instead (get_file_text / `filetier text {provider_file_id} "
            f"{copy.provider}`)"
        )
    return None
