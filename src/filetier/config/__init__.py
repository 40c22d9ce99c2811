"""Settings: built once at the edge (CLI, server, test), then passed down.

Nothing here reads the environment at import time; ``Settings()`` reads it when called.
A field ``x`` is read from ``FILETIER_X`` (pydantic-settings' ``env_prefix``); only names
outside that pattern carry an alias: the original design's (``FILE_CACHE_DIR``,
``MAX_MEMORY_CACHE_SIZE``, ``MAX_CACHE_SIZE_MB``, ``MAX_CACHE_AGE_DAYS``, ``SUPABASE_*``,
``DATABASE_URL``), the providers' own (``OPENAI_API_KEY``, ``KIMI_BASE_URL``, ...), and the
few fields whose attribute name is taken by their parsed value (``FILETIER_ALLOWED_ROOTS``).
Sizes accept plain bytes or a suffix (``64MiB``, ``2GB``).

::

    config/
      settings.py         Settings: the groups below composed, and the derived values
      store_fields.py     data dir, database, cache tiers, limits, S3 primary, timeouts
      provider_fields.py  LLM providers: keys, base URLs, models, uploads, retries, quotas
      server_fields.py    owner quotas, tokens, HTTP limits, download links, MCP uploads
      supabase.py         SUPABASE_* fields; where the project keeps its storage
      values.py           parsing: sizes, environment names, database URLs, masking
"""

from filetier.config.settings import Settings
from filetier.config.supabase import SUPABASE_DEFAULT_BUCKET, SupabaseTarget, resolve_supabase
from filetier.config.values import Size, mask_url, normalize_database_url, parse_size

__all__ = [
    "SUPABASE_DEFAULT_BUCKET",
    "Settings",
    "Size",
    "SupabaseTarget",
    "mask_url",
    "normalize_database_url",
    "parse_size",
    "resolve_supabase",
]
