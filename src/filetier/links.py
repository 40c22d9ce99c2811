"""Signed, expiring, revocable download links: one owner's file, readable without a token.

A link is ``<id>.<signature>``: ``id`` names a row of ``download_links`` and the signature
is an HMAC-SHA256, under the server's link key, of everything the row says (id, owner,
file, expiry, single use, byte range). The row is what makes a link revocable and
single-use on every host; the signature is what makes it unforgeable: guessing an id
gets nothing, and a row changed behind the server's back (a later expiry, another file)
no longer matches its signature.

Every way a link can fail (malformed, bad signature, unknown, expired, revoked, used, its
file deleted) raises the same :class:`NotFoundError` with the same message, so a link
tells its holder nothing about whether the file exists or ever did.

The key is ``FILETIER_LINK_SECRET`` or, unset, 32 random bytes generated once into
``<data dir>/link-secret`` (``0600``), published with ``link()`` so that two processes
starting together agree on one key. Hosts of a scaled-out deployment must share the
setting: a link minted on one host is checked on another.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import sqlalchemy as sa

from filetier.clock import utcnow
from filetier.config import Settings
from filetier.errors import ConfigError, InvalidInputError, NotFoundError
from filetier.metadata.database import Database
from filetier.metadata.repository import new_id
from filetier.metadata.schema import download_links
from filetier.modes import make_dirs, open_new

SECRET_FILE = "link-secret"  # noqa: S105 - the key file's name, not a key
SECRET_MIN_CHARS = 32
LINK_INVALID_MESSAGE = (
    "this link is not valid: it may have expired, been revoked or used up, or never existed"
)


def link_invalid() -> NotFoundError:
    """The one answer to every link that cannot be served."""
    return NotFoundError(LINK_INVALID_MESSAGE)


@dataclass(frozen=True, slots=True)
class LinkGrant:
    """What a link allows: ``owner``'s file ``file_id``, whole or bytes start..end."""

    link_id: UUID
    owner: str
    file_id: UUID
    expires_at: datetime
    single_use: bool
    range_start: int | None
    range_end: int | None


@dataclass(frozen=True, slots=True)
class MintedLink:
    token: str
    grant: LinkGrant


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_secret(settings: Settings) -> bytes:
    """The link key: the setting, else the data dir's generated key (made on first use)."""
    if settings.link_secret is not None:
        value = settings.link_secret.get_secret_value().strip()
        if len(value) < SECRET_MIN_CHARS:
            raise ConfigError(
                f"FILETIER_LINK_SECRET must have at least {SECRET_MIN_CHARS} characters"
            )
        return value.encode()
    home = make_dirs(settings.home.expanduser())
    path = home / SECRET_FILE
    with contextlib.suppress(FileNotFoundError):
        return _read_secret(path)
    # Written whole to a private temp, then published with link(), which fails if another
    # process got there first: a reader never sees a half-written key.
    temp = home / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = open_new(temp)
    try:
        os.write(fd, secrets.token_urlsafe(32).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    value = path.read_bytes().strip()
    if len(value) < SECRET_MIN_CHARS:
        raise ConfigError(f"the link key {path.name} in the data dir is too short; delete it")
    return value


class LinkAuthority:
    """Mints, checks and revokes links; one per process (it holds the key)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self._settings = settings
        self._db = db
        self._secret = load_secret(settings)

    def _sign(self, grant: LinkGrant) -> str:
        fields = (
            "v1",
            grant.link_id.hex,
            grant.owner,
            grant.file_id.hex,
            str(int(grant.expires_at.timestamp())),
            "1" if grant.single_use else "0",
            "" if grant.range_start is None else str(grant.range_start),
            "" if grant.range_end is None else str(grant.range_end),
        )
        message = "\x00".join(fields).encode()
        return _b64(hmac.new(self._secret, message, hashlib.sha256).digest())

    async def mint(
        self,
        owner: str,
        file_id: UUID,
        *,
        expires_in: int,
        single_use: bool = False,
        byte_range: tuple[int, int] | None = None,
    ) -> MintedLink:
        """A new link to ``owner``'s file (the caller has checked it is theirs)."""
        longest = self._settings.link_max_seconds
        if isinstance(expires_in, bool) or not isinstance(expires_in, int):
            raise InvalidInputError("expires_in must be a whole number of seconds")
        if not 1 <= expires_in <= longest:
            raise InvalidInputError(
                f"expires_in must be between 1 and {longest} seconds "
                f"(FILETIER_LINK_MAX_SECONDS), not {expires_in}"
            )
        now = utcnow()
        grant = LinkGrant(
            link_id=new_id(),
            owner=owner,
            file_id=file_id,
            expires_at=_whole_second_at_or_after(now + timedelta(seconds=expires_in)),
            single_use=single_use,
            range_start=byte_range[0] if byte_range else None,
            range_end=byte_range[1] if byte_range else None,
        )
        async with self._db.write() as conn:
            await conn.execute(
                sa.insert(download_links).values(
                    id=grant.link_id,
                    owner=owner,
                    file_id=file_id,
                    created_at=now,
                    expires_at=grant.expires_at,
                    single_use=single_use,
                    range_start=grant.range_start,
                    range_end=grant.range_end,
                )
            )
        return MintedLink(f"{grant.link_id.hex}.{self._sign(grant)}", grant)

    async def check(self, token: str) -> LinkGrant:
        """The grant of a live link (not using it up), else the one link error."""
        link_id, _, signature = token.partition(".")
        try:
            parsed = UUID(hex=link_id)
        except ValueError:
            raise link_invalid() from None
        if len(link_id) != 32 or not signature:
            raise link_invalid()
        async with self._db.read() as conn:
            row = (
                (await conn.execute(sa.select(download_links).where(download_links.c.id == parsed)))
                .mappings()
                .first()
            )
        if row is None:
            raise link_invalid()
        grant = LinkGrant(
            link_id=row["id"],
            owner=row["owner"],
            file_id=row["file_id"],
            expires_at=row["expires_at"],
            single_use=row["single_use"],
            range_start=row["range_start"],
            range_end=row["range_end"],
        )
        if not hmac.compare_digest(self._sign(grant), signature):
            raise link_invalid()
        if row["revoked_at"] is not None or grant.expires_at <= datetime.now(UTC):
            raise link_invalid()
        if grant.single_use and row["used_at"] is not None:
            raise link_invalid()
        return grant

    async def use(self, grant: LinkGrant) -> None:
        """Claim a single-use link, for one request only, on every host: of concurrent
        users, the conditional update succeeds for exactly one. Other links are not
        written on each use (a download history row records it instead)."""
        if not grant.single_use:
            return
        table = download_links
        now = utcnow()
        query = (
            sa.update(table)
            .where(table.c.id == grant.link_id, table.c.used_at.is_(None))
            .where(table.c.revoked_at.is_(None), table.c.expires_at > now)
            .values(used_at=now)
        )
        async with self._db.write() as conn:
            result = await conn.execute(query)
        if result.rowcount != 1:
            raise link_invalid()

    async def revoke(
        self, owner: str, *, link_id: UUID | None = None, file_id: UUID | None = None
    ) -> int:
        """Revoke one link, every link to a file, or (neither given) every link of the
        owner; returns how many live links were revoked. Another owner's link id is
        simply not found."""
        table = download_links
        query = (
            sa.update(table)
            .where(table.c.owner == owner, table.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        if link_id is not None:
            query = query.where(table.c.id == link_id)
        if file_id is not None:
            query = query.where(table.c.file_id == file_id)
        async with self._db.write() as conn:
            result = await conn.execute(query)
        revoked = int(result.rowcount)
        if link_id is not None and revoked == 0:
            raise NotFoundError(f"no live link with id {link_id}")
        return revoked


def link_url(settings: Settings, token: str, request_base: str | None = None) -> str:
    """The URL of a link: under ``FILETIER_PUBLIC_URL``; unset, under the address the
    caller reached this server at (a Host already checked against the allowed hosts), or
    the configured HTTP address when there is no request (stdio)."""
    base = (
        settings.public_url or request_base or f"http://{settings.http_host}:{settings.http_port}"
    )
    return f"{base.rstrip('/')}/links/{token}"


def parse_link_id(value: str) -> UUID:
    """A link id as the minting answer shows it (32 hex digits, or a UUID)."""
    try:
        return UUID(value.strip())
    except ValueError:
        raise InvalidInputError(f"{value[:64]!r} is not a link id") from None


def _whole_second_at_or_after(moment: datetime) -> datetime:
    """The signature carries whole seconds, so an expiry is rounded to one: up, so a link
    lives at least the seconds asked for (rounding down ended a 1 s link almost at once)."""
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)
