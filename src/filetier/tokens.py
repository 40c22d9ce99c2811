"""Bearer tokens -> owners, for the HTTP API and MCP over HTTP.

Tokens come from ``FILETIER_API_TOKENS`` (``owner:token`` pairs) or from
``filetier token create``, which stores only the token's SHA-256. Lookups compare hashes
in constant time; a token is never logged, and a wrong token and a missing one get the
same answer.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from filetier.clock import utcnow
from filetier.config import Settings
from filetier.errors import InvalidInputError, NotFoundError
from filetier.ids import check_owner_name
from filetier.metadata.database import Database
from filetier.metadata.schema import api_tokens

TOKEN_PREFIX = "ft_"  # noqa: S105 - a visible prefix, not a secret
_HASH_PREFIX_RE = re.compile(r"[0-9a-f]{8,64}")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    owner: str
    name: str | None
    token_hash_prefix: str


class TokenAuthority:
    def __init__(self, settings: Settings, db: Database) -> None:
        self._configured = settings.token_owners
        self._db = db

    @property
    def has_tokens_configured(self) -> bool:
        return bool(self._configured)

    async def owner_for(self, token: str | None) -> str | None:
        """The owner a bearer token belongs to, or None."""
        if not token:
            return None
        digest = token_hash(token)
        for known, owner in self._configured.items():
            if hmac.compare_digest(known, digest):
                return owner
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(api_tokens.c.owner).where(api_tokens.c.token_hash == digest)
                )
            ).first()
        return str(row[0]) if row else None

    async def create(self, owner: str, name: str | None = None) -> str:
        """A new random token for ``owner``; only its hash is stored. Shown once."""
        check_owner_name(owner)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self._db.write() as conn:
            await conn.execute(
                sa.insert(api_tokens).values(
                    token_hash=token_hash(token), owner=owner, name=name, created_at=utcnow()
                )
            )
        return token

    async def list(self) -> list[TokenInfo]:
        async with self._db.read() as conn:
            rows = (
                (await conn.execute(sa.select(api_tokens).order_by(api_tokens.c.created_at)))
                .mappings()
                .all()
            )
        return [TokenInfo(r["owner"], r["name"], r["token_hash"][:12]) for r in rows]

    async def revoke(self, hash_prefix: str) -> int:
        """Delete the stored tokens whose hash starts with ``hash_prefix`` (8+ hex digits,
        as ``list`` shows them); NotFoundError when none does."""
        hash_prefix = hash_prefix.strip().lower()
        if not _HASH_PREFIX_RE.fullmatch(hash_prefix):
            raise InvalidInputError(
                f"{hash_prefix[:64]!r} is not a token hash prefix: give at least 8 hex digits "
                "of the hash `filetier token list` shows"
            )
        async with self._db.write() as conn:
            result = await conn.execute(
                sa.delete(api_tokens).where(
                    api_tokens.c.token_hash.startswith(hash_prefix, autoescape=True)
                )
            )
        if not result.rowcount:
            raise NotFoundError(f"no stored token's hash starts with {hash_prefix}")
        return int(result.rowcount)
