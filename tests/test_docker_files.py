"""The Docker files, checked without Docker (it cannot run here): the Dockerfile by
hadolint, docker-compose.yml against the Compose Specification's JSON schema (the copy
check-jsonschema ships), and the promises the files make, read from their YAML.

Not run here: building the image, `docker compose config`'s own interpolation and
`docker compose up` (the bind-mount ownership and the healthcheck-gated start)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
COMPOSE = ROOT / "docker-compose.yml"
SECRET_NAME_RE = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY|DATABASE_URL|MC_HOST", re.I)
REQUIRED_VAR_RE = re.compile(r"\$\{(\w+):\?[^}]+\}")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_dockerfile_passes_hadolint() -> None:
    proc = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_file_matches_the_compose_spec_schema() -> None:
    proc = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_writes_no_secret_and_every_variable_it_needs_is_documented() -> None:
    env_example = (ROOT / ".env.example").read_text()
    needed = set()
    for name, service in compose()["services"].items():
        assert service.get("env_file") in (None, ".env"), name
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME_RE.search(key):
                # A secret is a required variable from .env, never a literal.
                assert REQUIRED_VAR_RE.search(str(value)), (name, key)
                literal = re.sub(r"\$\{[^}]+\}", "", str(value))
                assert not re.search(r"://[^/@]*:[^/@]+@", literal), (name, key)  # user:pw@
            needed.update(REQUIRED_VAR_RE.findall(str(value)))
    assert needed >= {"POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}
    for variable in needed:
        assert f"{variable}=" in env_example, variable


def test_compose_images_are_pinned_and_starts_are_gated_on_health() -> None:
    services = compose()["services"]
    for name, service in services.items():
        image = service.get("image", "")
        if "build" not in service:
            assert ":" in image.split("/")[-1] and not image.endswith(":latest"), name
        if "minio" in image:
            assert re.search(r":RELEASE\.[\dT-]+Z@sha256:[0-9a-f]{64}$", image), name
        one_shot = service.get("restart") == "no" or name.endswith(("-init", "-setup"))
        if not one_shot:
            assert service.get("restart") in ("unless-stopped", "always"), name
        for dependency, rule in (service.get("depends_on") or {}).items():
            condition = rule["condition"]
            assert condition in ("service_healthy", "service_completed_successfully"), name
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
    for name in ("filetier", "postgres", "minio"):
        assert services[name]["healthcheck"]["test"], name


def test_bind_mount_is_handed_to_the_images_user_before_filetier_starts() -> None:
    services = compose()["services"]
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert user is not None, "the image runs as a numeric non-root uid"
    assert user.group(1) != "0"
    assert "./files:/app/files" in services["filetier"]["volumes"]
    init = services["files-init"]
    assert init["entrypoint"] == ["chown", f"{user.group(1)}:{user.group(2)}", "/app/files"]
    assert init["volumes"] == ["./files:/app/files"] and init["user"] == "0:0"
    assert services["filetier"]["depends_on"]["files-init"] == {
        "condition": "service_completed_successfully"
    }


def test_build_context_and_git_leave_out_local_state() -> None:
    dockerignore = [
        line for line in (ROOT / ".dockerignore").read_text().splitlines() if line[:1] != "#"
    ]
    for entry in (".venv/", ".git/", "files/", ".env", "**/__pycache__/", ".mypy_cache/"):
        assert entry in dockerignore, entry
    gitignore = (ROOT / ".gitignore").read_text().splitlines()
    assert "files/" in gitignore and ".env" in gitignore
    # What the Dockerfile copies is not ignored.
    for needed in ("src", "pyproject.toml", "README.md"):
        assert needed not in dockerignore and f"{needed}/" not in dockerignore
