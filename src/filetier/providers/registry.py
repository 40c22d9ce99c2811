"""Which providers exist, what they accept, and building the configured ones.

Limits are the documented ones (checked 2026-12): Kimi takes 1,000 files of up to
100 MB, 10 GB in all, for ``file-extract``, ``image`` and ``video``. GLM's current
purposes are ``batch`` (100 MB, 1,000 files), ``code-interpreter`` (20 MB, 100 files),
``agent`` (20 MB, 1,000 files) and ``voice-clone-input``; its ``file-extract`` (50 MB)
is marked legacy but still accepted, and so are ``retrieval`` and ``fine-tune``.
OpenAI's files API takes up to 512 MB per file, and up to 8 GB through its multipart
Uploads API (which filetier uses above 512 MB). Gemini takes 2 GB per file and 20 GB per
project and has no purposes (filetier files its copies under the default one, so each
content goes there once). Anthropic's Files API takes 500 MB per file and 100 GB per
organization and has no purposes (its copies are recorded under ``file-extract``).
Mistral takes 512 MB per file for ``fine-tune``, ``batch`` and ``ocr``; ``file-extract``
means ``ocr`` there. Kimi and GLM return extracted text from ``files.content``, never
the original bytes; Gemini and Anthropic return neither.
``FILETIER_PROVIDER_LIMITS`` overrides any number (``kimi.max_files=500``,
``glm.code-interpreter.max_files=50``).

Gemini, Anthropic and Mistral are reached through their own SDKs, installed as extras
(``pip install 'filetier[gemini]'``, ``'filetier[anthropic]'``, ``'filetier[mistral]'``, or
``'filetier[providers]'`` for all); without one, asking for that provider is a one-line
error naming the extra.
"""

from __future__ import annotations

import dataclasses
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
    extra: str | None = None  # the pip extra that brings the provider's SDK
    offers_text: bool = True  # whether get_file_text can read a text of its files


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
            purposes=frozenset(
                {
                    "batch",
                    "code-interpreter",
                    "agent",
                    "voice-clone-input",
                    "file-extract",  # legacy in Zhipu's docs, still accepted
                    "retrieval",
                    "fine-tune",
                }
            ),
            max_file_bytes={
                "batch": 100 * MB,
                "code-interpreter": 20 * MB,
                "agent": 20 * MB,
                "file-extract": 50 * MB,
                "retrieval": 50 * MB,
            },
            max_files_per_purpose={"batch": 1000, "code-interpreter": 100, "agent": 1000},
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
                8 * 1024 * MB,
            ),
        ),
        returns_original_bytes=True,
    ),
    "gemini": ProviderSpec(
        "gemini",
        "GEMINI_API_KEY",
        ProviderLimits(
            purposes=frozenset({"file-extract"}),
            max_file_bytes={"file-extract": 2 * 1024 * MB},
            max_total_bytes=20 * 1024 * MB,
        ),
        returns_original_bytes=False,
        extra="gemini",
    ),
    "anthropic": ProviderSpec(
        "anthropic",
        "ANTHROPIC_API_KEY",
        ProviderLimits(
            purposes=frozenset({"file-extract"}),
            max_file_bytes={"file-extract": 500 * MB},
            max_total_bytes=100 * 1024 * MB,
        ),
        returns_original_bytes=False,
        extra="anthropic",
        offers_text=False,
    ),
    "mistral": ProviderSpec(
        "mistral",
        "MISTRAL_API_KEY",
        ProviderLimits(
            purposes=frozenset({"fine-tune", "batch", "ocr"}),
            max_file_bytes=dict.fromkeys(("fine-tune", "batch", "ocr"), 512 * MB),
            purpose_aliases={"file-extract": "ocr"},
        ),
        returns_original_bytes=True,
        extra="mistral",
        offers_text=False,
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
    per_purpose_count = dict(spec.limits.max_files_per_purpose)
    for purpose in spec.limits.purposes:
        if f"{purpose}.max_files" in overrides:
            per_purpose_count[purpose] = overrides[f"{purpose}.max_files"]
    return dataclasses.replace(
        spec.limits,
        max_file_bytes=per_file,
        max_files_per_purpose=per_purpose_count,
        max_files=overrides.get("max_files", spec.limits.max_files),
        max_total_bytes=overrides.get("max_total_bytes", spec.limits.max_total_bytes),
    )


def configured_names(settings: Settings) -> list[str]:
    keys = {
        "kimi": settings.kimi_api_key,
        "glm": settings.glm_api_key,
        "openai": settings.openai_api_key,
        "gemini": settings.gemini_api_key,
        "anthropic": settings.anthropic_api_key,
        "mistral": settings.mistral_api_key,
    }
    return [name for name, key in keys.items() if key is not None and key.get_secret_value()]


def build_provider(name: str, settings: Settings) -> Provider:
    spec = SPECS.get(name.lower())
    if spec is None:
        raise UnknownProviderError(
            f"unknown provider {name!r}: use one of {', '.join(sorted(SPECS))}"
        )
    key = {
        "kimi": settings.kimi_api_key,
        "glm": settings.glm_api_key,
        "openai": settings.openai_api_key,
        "gemini": settings.gemini_api_key,
        "anthropic": settings.anthropic_api_key,
        "mistral": settings.mistral_api_key,
    }[spec.name]
    if key is None or not key.get_secret_value():
        raise ProviderNotConfiguredError(
            f"provider {spec.name} is not configured: set {spec.key_setting}"
        )
    limits = _limits(spec, settings)
    if spec.name == "gemini":
        try:
            from filetier.providers.gemini import GeminiProvider
        except ImportError as exc:
            raise _missing_sdk(spec, exc) from None
        return GeminiProvider(
            api_key=key.get_secret_value(),
            base_url=settings.gemini_base_url,
            limits=limits,
            default_model=settings.gemini_model,
            timeout_seconds=settings.provider_timeout_seconds,
            retry_attempts=settings.provider_retry_attempts,
            max_retry_wait_seconds=settings.provider_max_retry_wait_seconds,
            processing_timeout_seconds=settings.gemini_processing_timeout_seconds,
        )
    if spec.name == "anthropic":
        try:
            from filetier.providers.anthropic_files import AnthropicProvider
        except ImportError as exc:
            raise _missing_sdk(spec, exc) from None
        return AnthropicProvider(
            api_key=key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            limits=limits,
            default_model=settings.anthropic_model,
            files_beta=settings.anthropic_files_beta,
            file_ttl_seconds=settings.anthropic_file_ttl_seconds,
            timeout_seconds=settings.provider_timeout_seconds,
            retry_attempts=settings.provider_retry_attempts,
            max_retry_wait_seconds=settings.provider_max_retry_wait_seconds,
        )
    if spec.name == "mistral":
        try:
            from filetier.providers.mistral_files import MistralProvider
        except ImportError as exc:
            raise _missing_sdk(spec, exc) from None
        return MistralProvider(
            api_key=key.get_secret_value(),
            base_url=settings.mistral_base_url,
            limits=limits,
            default_model=settings.mistral_model,
            timeout_seconds=settings.provider_timeout_seconds,
            retry_attempts=settings.provider_retry_attempts,
            max_retry_wait_seconds=settings.provider_max_retry_wait_seconds,
        )
    base_url, model = {
        "kimi": (settings.kimi_base_url, settings.kimi_model),
        "glm": (settings.glm_base_url, settings.glm_model),
        "openai": (settings.openai_base_url, settings.openai_model),
    }[spec.name]
    # Imported here: the openai SDK takes a third of a second to import, which every
    # CLI command would pay even when it never talks to a provider.
    from filetier.providers.openai_compat import OpenAICompatibleProvider
    from filetier.providers.openai_uploads import MultipartPolicy

    return OpenAICompatibleProvider(
        name=spec.name,
        api_key=key.get_secret_value(),
        base_url=base_url,
        limits=limits,
        default_model=model,
        returns_original_bytes=spec.returns_original_bytes,
        timeout_seconds=settings.provider_timeout_seconds,
        retry_attempts=settings.provider_retry_attempts,
        max_retry_wait_seconds=settings.provider_max_retry_wait_seconds,
        expires_after_seconds=(
            settings.openai_expires_after_seconds if spec.name == "openai" else None
        ),
        multipart=(
            MultipartPolicy(
                threshold_bytes=settings.openai_uploads_threshold_bytes,
                part_bytes=settings.openai_upload_part_bytes,
                parallel=settings.openai_upload_parallel,
            )
            if spec.name == "openai"
            else None
        ),
    )


def _missing_sdk(spec: ProviderSpec, exc: ImportError) -> Exception:
    """The adapters import their SDK only when their provider is used: it is an extra.
    An import error inside filetier itself is a bug and is not disguised as one."""
    if exc.name is not None and exc.name.split(".")[0] == "filetier":
        return exc
    return ProviderNotConfiguredError(
        f"provider {spec.name} needs the {exc.name or 'SDK'} package: "
        f"pip install 'filetier[{spec.extra}]'"
    )
