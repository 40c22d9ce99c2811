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
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from filetier.config import Settings
from filetier.errors import ProviderNotConfiguredError, UnknownProviderError
from filetier.providers.base import MultipartPolicy, Provider, ProviderLimits, RetryPolicy

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


def _openai_only(name: str, settings: Settings) -> dict[str, Any]:
    """Kimi and GLM have neither ``expires_after`` nor the multipart Uploads API."""
    openai = name == "openai"
    return {
        "name": name,
        "returns_original_bytes": SPECS[name].returns_original_bytes,
        "expires_after_seconds": settings.openai_expires_after_seconds if openai else None,
        "multipart": (
            MultipartPolicy(
                threshold_bytes=settings.openai_uploads_threshold_bytes,
                part_bytes=settings.openai_upload_part_bytes,
                parallel=settings.openai_upload_parallel,
            )
            if openai
            else None
        ),
    }


@dataclass(frozen=True, slots=True)
class Adapter:
    """Where a provider's adapter class lives, and what it takes beyond the arguments
    every adapter takes (key, base URL, limits, model, timeout, retry policy)."""

    module: str
    cls: str
    kwargs: Callable[[str, Settings], dict[str, Any]] = lambda _name, _settings: {}


OPENAI_COMPAT = Adapter(
    "filetier.providers.openai_compat", "OpenAICompatibleProvider", _openai_only
)
# Modules are imported only when their provider is built: the SDKs are extras (and the
# openai SDK takes a third of a second to import, which every CLI command would pay).
ADAPTERS: dict[str, Adapter] = {
    "kimi": OPENAI_COMPAT,
    "glm": OPENAI_COMPAT,
    "openai": OPENAI_COMPAT,
    "gemini": Adapter(
        "filetier.providers.gemini",
        "GeminiProvider",
        lambda _name, s: {"processing_timeout_seconds": s.gemini_processing_timeout_seconds},
    ),
    "anthropic": Adapter(
        "filetier.providers.anthropic_files",
        "AnthropicProvider",
        lambda _name, s: {
            "files_beta": s.anthropic_files_beta,
            "file_ttl_seconds": s.anthropic_file_ttl_seconds,
        },
    ),
    "mistral": Adapter("filetier.providers.mistral_files", "MistralProvider"),
}


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        attempts=max(1, settings.provider_retry_attempts),
        max_wait_seconds=settings.provider_max_retry_wait_seconds,
    )


def _api_key(name: str, settings: Settings) -> str | None:
    key: SecretStr | None = getattr(settings, f"{name}_api_key")
    return key.get_secret_value() if key is not None and key.get_secret_value() else None


def configured_names(settings: Settings) -> list[str]:
    return [name for name in SPECS if _api_key(name, settings) is not None]


def build_provider(name: str, settings: Settings) -> Provider:
    spec = SPECS.get(name.lower())
    if spec is None:
        raise UnknownProviderError(
            f"unknown provider {name!r}: use one of {', '.join(sorted(SPECS))}"
        )
    key = _api_key(spec.name, settings)
    if key is None:
        raise ProviderNotConfiguredError(
            f"provider {spec.name} is not configured: set {spec.key_setting}"
        )
    adapter = ADAPTERS[spec.name]
    try:
        cls = getattr(importlib.import_module(adapter.module), adapter.cls)
    except ImportError as exc:
        raise _missing_sdk(spec, exc) from None
    provider: Provider = cls(
        api_key=key,
        base_url=getattr(settings, f"{spec.name}_base_url"),
        limits=_limits(spec, settings),
        default_model=getattr(settings, f"{spec.name}_model"),
        timeout_seconds=settings.provider_timeout_seconds,
        retry=retry_policy(settings),
        **adapter.kwargs(spec.name, settings),
    )
    return provider


def _missing_sdk(spec: ProviderSpec, exc: ImportError) -> Exception:
    """The adapters import their SDK only when their provider is used: it is an extra.
    An import error inside filetier itself is a bug and is not disguised as one."""
    if spec.extra is None or (exc.name is not None and exc.name.split(".")[0] == "filetier"):
        return exc
    return ProviderNotConfiguredError(
        f"provider {spec.name} needs the {exc.name or 'SDK'} package: "
        f"pip install 'filetier[{spec.extra}]'"
    )
