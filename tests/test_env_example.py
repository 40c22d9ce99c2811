"""`.env.example` names every setting, so a deployment can see all it may configure."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices

from filetier.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_env_example_lists_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    missing = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        prefix = Settings.model_config.get("env_prefix", "")
        env = alias.choices[0] if isinstance(alias, AliasChoices) else (prefix + name).upper()
        if f"{env}=" not in text:
            missing.append(env)
    assert missing == []


def test_docker_files_use_the_documented_volume_and_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "USER 10001:10001" in dockerfile and "--uid 10001" in dockerfile
    assert "./files:/app/files" in compose
    assert "postgres" in compose and "minio" in compose
