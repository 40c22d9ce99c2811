"""The serving settings: owner quotas, tokens, HTTP limits, download links, MCP uploads.

A mixin of :class:`~filetier.config.settings.Settings`; what is derived from these
(``token_owners``, ``allowed_hosts``, ...) lives on ``Settings``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

from filetier.config.values import Size, env_names


class ServerFields(BaseModel):
    """Who may use the HTTP API and MCP, and how much a request or a connection may take."""

    owner_quota_bytes: Size | None = Field(
        default=None,
        description="Most bytes one owner may store (sum of file sizes); unset = no limit.",
    )
    owner_quota_files: int | None = Field(
        default=None,
        description="Most files one owner may store; unset = no limit.",
    )
    api_tokens: SecretStr | None = Field(
        default=None,
        description="HTTP/MCP bearer tokens as comma-separated owner:token pairs.",
    )
    http_host: str = Field(
        default="127.0.0.1",
    )
    http_port: int = Field(
        default=8787,
    )
    verified_copy_seconds: float = Field(
        default=300.0,
        ge=0,
        description="HTTP downloads: a local copy hashed in full is served again without "
        "re-hashing for this many seconds while unchanged; 0 hashes every download.",
    )
    http_head_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A request's headers must arrive within this many seconds (else 408); "
        "also the grace period before the body rate is checked.",
    )
    http_min_body_rate: Size = Field(
        default=1024,
        description="Slowest average request-body rate, bytes per second, before a "
        "connection is closed (slow-loris defence).",
    )
    http_min_response_rate: Size = Field(
        default=1024,
        description="Slowest rate, bytes per second over any FILETIER_HTTP_HEAD_TIMEOUT_SECONDS "
        "stretch, at which a client that holds up a response must read it before its "
        "connection is closed.",
    )
    http_max_connections: int = Field(
        default=256,
        ge=1,
        description="Most open HTTP connections (and requests in progress); requests beyond "
        "are answered 503.",
    )
    http_read_ahead_bytes: Size = Field(
        default=64 * 1024 * 1024,
        description="Most bytes all downloads together may read ahead of what their clients "
        "have taken.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token (16+ characters) that may read /metrics and nothing else; "
        "the operator's API token (owner FILETIER_OWNER) may read it too.",
    )
    allow_no_auth: bool = Field(
        default=False,
        description="Serve without tokens (honoured only when bound to loopback).",
    )
    allowed_hosts_raw: str = Field(
        default="",
        validation_alias=env_names("FILETIER_ALLOWED_HOSTS", "allowed_hosts"),
        description="Host headers accepted (DNS-rebinding protection); default: loopback names.",
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL clients reach this server at (e.g. https://files.example.com), "
        "used to build download links; default: the address the server is bound to.",
    )
    link_max_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=1,
        description="Longest lifetime, in seconds, a caller may give a download link.",
    )
    link_secret: SecretStr | None = Field(
        default=None,
        description="Key (32+ characters) that signs download links; the same on every host "
        "of a scaled-out deployment. Unset: generated once and kept 0600 in the data dir.",
    )
    inline_upload_max_bytes: Size = Field(
        default=1024 * 1024,
        description="Largest upload an MCP tool accepts inline (text or base64).",
    )
