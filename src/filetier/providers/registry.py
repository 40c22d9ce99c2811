"""Which providers exist, what they accept, and building the configured ones.

Limits are the documented ones (checked 2026-11): Kimi takes 1,000 files of up to
100 MB, 10 GB in all, for ``file-extract``, ``image`` and ``video``; GLM's
``file-extract`` takes up to 50 MB; OpenAI's files API up to 512 MB per file. Kimi and
GLM return extracted text from ``files.content``, never the original bytes.
``FILETIER_PROVIDER_LIMITS`` overrides any number (``kimi.max_files=500``).
"""

from __future__ import annotations

from dataclasses import dataclass

from filetier.config import Settings
from filetier.errors import ProviderNotConfiguredError, UnknownProviderError
from filetier.providers.base import Provider, ProviderLimits

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    key_setting: str
    limits: ProviderLimits
    returns_original_bytes: bool


SPECS: dict[str, ProviderSpec] = {
    "kimi": ProviderSpec(
        "kimi",
        "KIMI_API_KEY",
        ProviderLimits(
            purposes=frozenset({"file-extract", "image", "video"}),
            max_file_bytes={"file-extract": 100 * MB, "image": 100 * MB, "video": 100 * MB},
            max_files=1000,
            max_total_bytes=10 * 1024 * MB,
        ),
        returns_original_bytes=False,
    ),
    "glm": ProviderSpec(
        "glm",
        "GLM_API_KEY",
        ProviderLimits(
            purposes=frozenset({"file-extract", "batch", "retrieval", "fine-tune"}),
            max_file_bytes={"file-extract": 50 * MB, "batch": 100 * MB, "retrieval": 50 * MB},
        ),
        returns_original_bytes=False,
    ),
    "openai": ProviderSpec(
        "openai",
        "OPENAI_API_KEY",
        ProviderLimits(
            purposes=frozenset(
                {"assistants", "batch", "fine-tune", "vision", "user_data", "evals", "file-extract"}
            ),
            max_file_bytes=dict.fromkeys(
                (
                    "assistants",
                    "batch",
                    "fine-tune",
                    "vision",
                    "user_data",
                    "evals",
                    "file-extract",
                ),
                512 * MB,
            ),
        ),
        returns_original_bytes=True,
    ),
}


def _limits(spec: ProviderSpec, settings: Settings) -> ProviderLimits:
    overrides = {k: v for (p, k), v in settings.provider_limit_overrides.items() if p == spec.name}
    if not overrides:
        return spec.limits
    per_file = dict(spec.limits.max_file_bytes)
    if "max_file_bytes" in overrides:
        per_file = dict.fromkeys(spec.limits.purposes, overrides["max_file_bytes"])
    for purpose in spec.limits.purposes:
        if purpose in overrides:
            per_file[purpose] = overrides[purpose]
    return ProviderLimits(
        purposes=spec.limits.purposes,
        max_file_bytes=per_file,
        max_files=overrides.get("max_files", spec.limits.max_files),
        max_total_bytes=overrides.get("max_total_bytes", spec.limits.max_total_bytes),
    )


def configured_names(settings: Settings) -> list[str]:
    keys = {
        "kimi": settings.kimi_api_key,
        "glm": settings.glm_api_key,
        "openai": settings.openai_api_key,
    }
    return [name for name, key in keys.items() if key is not None and key.get_secret_value()]


def build_provider(name: str, settings: Settings) -> Provider:
    spec = SPECS.get(name.lower())
    if spec is None:
        raise UnknownProviderError(
            f"unknown provider {name!r}: use one of {', '.join(sorted(SPECS))}"
        )
    key, base_url, model = {
        "kimi": (settings.kimi_api_key, settings.kimi_base_url, settings.kimi_model),
        "glm": (settings.glm_api_key, settings.glm_base_url, settings.glm_model),
        "openai": (settings.openai_api_key, settings.openai_base_url, settings.openai_model),
    }[spec.name]
    if key is None or not key.get_secret_value():
        raise ProviderNotConfiguredError(
            f"provider {spec.name} is not configured: set {spec.key_setting}"
        )
    # Imported here: the openai SDK takes a third of a second to import, which every
    # CLI command would pay even when it never talks to a provider.
    from filetier.providers.openai_compat import OpenAICompatibleProvider

    return OpenAICompatibleProvider(
        name=spec.name,
        api_key=key.get_secret_value(),
        base_url=base_url,
        limits=_limits(spec, settings),
        default_model=model,
        returns_original_bytes=spec.returns_original_bytes,
        timeout_seconds=settings.provider_timeout_seconds,
        retry_attempts=settings.provider_retry_attempts,
        max_retry_wait_seconds=settings.provider_max_retry_wait_seconds,
    )
