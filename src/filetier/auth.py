"""Bearer tokens -> owners, for the HTTP API and MCP over HTTP.

Tokens come from ``FILETIER_API_TOKENS`` (``owner:token`` pairs) or from
``filetier token create``, which stores only the token's SHA-256. Lookups compare hashes
in constant time; a token is never logged, and a wrong token and a missing one get the
same answer.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from filetier.config import Settings
from filetier.metadata.database import Database
from filetier.metadata.repository import utcnow
from filetier.metadata.schema import api_tokens

TOKEN_PREFIX = "ft_"  # noqa: S105 - a visible prefix, not a secret


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
        if len(hash_prefix) < 8:
            raise ValueError("give at least 8 characters of the token hash")
        async with self._db.write() as conn:
            result = await conn.execute(
                sa.delete(api_tokens).where(
                    api_tokens.c.token_hash.startswith(hash_prefix, autoescape=True)
                )
            )
        return int(result.rowcount)
