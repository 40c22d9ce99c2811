"""The providers' settings: API keys, base URLs, models, upload tuning, retries, quotas.

A mixin of :class:`~filetier.config.settings.Settings`. The keys and base URLs are read
under the providers' own names (``OPENAI_API_KEY``, ``KIMI_BASE_URL``, ...).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

from filetier.config.values import Size, env_names


class ProviderFields(BaseModel):
    """One group of fields per LLM provider, then the settings they share."""

    kimi_api_key: SecretStr | None = Field(default=None, validation_alias=env_names("KIMI_API_KEY"))
    kimi_base_url: str = Field(
        default="https://api.moonshot.ai/v1",
        validation_alias=env_names("KIMI_BASE_URL", "kimi_base_url"),
        description="Moonshot Kimi API (https://api.moonshot.cn/v1 in mainland China).",
    )
    kimi_model: str = Field(
        default="moonshot-v1-128k",
    )
    glm_api_key: SecretStr | None = Field(default=None, validation_alias=env_names("GLM_API_KEY"))
    glm_base_url: str = Field(
        default="https://open.bigmodel.cn/api/paas/v4",
        validation_alias=env_names("GLM_BASE_URL", "glm_base_url"),
        description="Zhipu BigModel API (https://api.z.ai/api/paas/v4 for Z.ai).",
    )
    glm_model: str = Field(
        default="glm-4-long",
    )
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=env_names("OPENAI_API_KEY")
    )
    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        validation_alias=env_names("OPENAI_BASE_URL", "openai_base_url"),
        description="Any OpenAI-compatible files API.",
    )
    openai_model: str = Field(
        default="gpt-4o-mini",
    )
    openai_expires_after_seconds: int | None = Field(
        default=None,
        ge=3600,
        le=30 * 24 * 3600,
        description="OpenAI deletes uploaded copies this long after creation (expires_after).",
    )
    openai_uploads_threshold_bytes: Size = Field(
        default=512 * 1024 * 1024,
        ge=1,
        description="Files larger than this go to OpenAI through the multipart Uploads API.",
    )
    openai_upload_part_bytes: Size = Field(
        default=64 * 1024 * 1024,
        ge=1,
        le=64 * 1024 * 1024,
        description="Part size of an OpenAI multipart upload (64 MiB at most).",
    )
    openai_upload_parallel: int = Field(
        default=4,
        ge=1,
        le=16,
        description="Parts of one OpenAI multipart upload in flight (and in memory) at once.",
    )
    gemini_api_key: SecretStr | None = Field(
        default=None, validation_alias=env_names("GEMINI_API_KEY", "gemini_api_key")
    )
    gemini_base_url: str = Field(
        default="https://generativelanguage.googleapis.com",
        validation_alias=env_names("GEMINI_BASE_URL", "gemini_base_url"),
        description="Google Gemini API (the Files API lives under /v1beta and /upload/v1beta).",
    )
    gemini_model: str = Field(
        default="gemini-2.5-flash",
    )
    gemini_processing_timeout_seconds: float = Field(
        default=300,
        gt=0,
        description="Longest wait for an uploaded Gemini file to go from PROCESSING to ACTIVE.",
    )
    provider_reuse_margin_seconds: float = Field(
        default=3600,
        ge=0,
        description="A provider copy is reused only while it has more life left than this.",
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=env_names("ANTHROPIC_API_KEY")
    )
    anthropic_base_url: str = Field(
        default="https://api.anthropic.com",
        validation_alias=env_names("ANTHROPIC_BASE_URL", "anthropic_base_url"),
        description="Anthropic API (the Files API lives under /v1/files).",
    )
    anthropic_model: str = Field(
        default="claude-sonnet-4-5",
    )
    anthropic_files_beta: bool = Field(
        default=False,
        description="Send 'anthropic-beta: files-api-2025-04-14' (deployments that still need it).",
    )
    anthropic_file_ttl_seconds: int | None = Field(
        default=None,
        ge=3600,
        le=7776000,
        description="expires_in_seconds for Anthropic uploads (3600-7776000); unset = no expiry.",
    )
    mistral_api_key: SecretStr | None = Field(
        default=None, validation_alias=env_names("MISTRAL_API_KEY")
    )
    mistral_base_url: str = Field(
        default="https://api.mistral.ai",
        validation_alias=env_names("MISTRAL_BASE_URL", "mistral_base_url"),
        description="Mistral API (the files API lives under /v1/files).",
    )
    mistral_model: str = Field(
        default="mistral-small-latest",
    )
    provider_timeout_seconds: float = Field(
        default=60,
        description="Timeout of one provider request.",
    )
    provider_retry_attempts: int = Field(
        default=4,
        description="Attempts per provider call on 429/5xx/timeouts (Retry-After honoured).",
    )
    provider_max_retry_wait_seconds: float = Field(
        default=30,
        description="Longest total wait between retries of one provider call.",
    )
    provider_limits_raw: str = Field(
        default="",
        validation_alias=env_names("FILETIER_PROVIDER_LIMITS", "provider_limits"),
        description="Override provider quotas, e.g. 'kimi.max_files=500,kimi.max_total_bytes=5GB'.",
    )
