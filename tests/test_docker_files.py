"""docker/: the compose file against the Compose specification's schema, the example settings file
against the settings the console reads, and the example as shipped passing `check --deploy`.
(`test_compose_stack.py` runs the processes the files define.)"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

from tests.security.test_deploy_settings import INHERITED, app_certificate, check
from tests.test_compose_stack import read_env_file

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
# Read by the settings but only meaningful to the test suite.
TEST_ONLY = {"TEST_SQLITE_PATH"}
# Compose variables (the postgres and redis services, the demo's admin) and the entrypoint's waits.
NOT_SETTINGS = {
    "POSTGRES_PASSWORD",
    "POSTGRES_APP_PASSWORD",
    "REDIS_PASSWORD",
    "DJANGO_SUPERUSER_PASSWORD",
    "DJANGO_SUPERUSER_TOTP_KEY",
    "DJANGO_SUPERUSER_BACKUP_CODES",
    "CONSOLE_ENV_FILE",
    "WAIT_FOR_DEPENDENCIES_SECONDS",
    "WAIT_FOR_MIGRATIONS_SECONDS",
}


def validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_read() -> set[str]:
    text = (ROOT / "msp_console" / "settings.py").read_text()
    return set(re.findall(r'env_\w+\(\s*"([A-Z][A-Z0-9_]+)"', text)) - TEST_ONLY


def secret_settings() -> set[str]:
    return set(
        re.findall(r'env_secret\(\s*"([A-Z][A-Z0-9_]+)"', (ROOT / "msp_console" / "settings.py").read_text())
    )


def compose_environment() -> set[str]:
    compose = YAML(typ="safe").load((DOCKER / "compose.yml").read_text())
    return set(compose["x-console-env"])


def test_compose_file_follows_the_compose_specification(tmp_path):
    result = validate(DOCKER / "compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    # The schema is really applied: a misspelt key and a wrong type are refused.
    broken = (
        (DOCKER / "compose.yml").read_text().replace("restart: unless-stopped", "restrat: unless-stopped", 1)
    )
    (tmp_path / "misspelt.yml").write_text(broken)
    result = validate(tmp_path / "misspelt.yml")
    assert result.returncode != 0 and "restrat" in result.stdout
    wrong = (
        (DOCKER / "compose.yml")
        .read_text()
        .replace("healthcheck:\n      disable: true", "healthcheck: yes", 1)
    )
    assert wrong != (DOCKER / "compose.yml").read_text()
    (tmp_path / "wrong.yml").write_text(wrong)
    assert validate(tmp_path / "wrong.yml").returncode != 0


def test_the_example_lists_every_setting_and_nothing_else():
    example = set(read_env_file(DOCKER / ".env.example"))
    listed = {
        name.removesuffix("_FILE") if name.removesuffix("_FILE") in secret_settings() else name
        for name in example
    }
    missing = settings_read() - listed - compose_environment()
    assert not missing, f"docker/.env.example does not list {sorted(missing)}"
    unknown = listed - settings_read() - NOT_SETTINGS
    assert not unknown, f"docker/.env.example lists {sorted(unknown)}, which nothing reads"
    demo_unknown = set(read_env_file(DOCKER / "demo.env")) - settings_read() - NOT_SETTINGS
    assert not demo_unknown, f"docker/demo.env sets {sorted(demo_unknown)}, which nothing reads"


def test_the_example_passes_the_deploy_check_once_its_secrets_are_filled_in(tmp_path):
    import os

    example = read_env_file(DOCKER / ".env.example")
    key_file, cert_file = app_certificate(tmp_path)
    filled = {
        **example,
        "SECRET_KEY": secrets.token_urlsafe(64),
        "GRAPH_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        "GRAPH_CLIENT_PRIVATE_KEY_FILE": key_file,
        "GRAPH_CLIENT_CERTIFICATE_FILE": cert_file,
        # As compose.yml builds them from the passwords.
        "DATABASE_URL": f"sqlite:///{tmp_path / 'console.sqlite3'}",
        "REDIS_URL": f"redis://:{example['REDIS_PASSWORD']}@redis:6379/0",
    }
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    env.update({k: v for k, v in filled.items() if v != ""}, DJANGO_SETTINGS_MODULE="msp_console.settings")
    result = check(env, "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    # And as shipped, with its placeholders, it is refused: the operator must fill it in.
    env["SECRET_KEY"] = example["SECRET_KEY"]
    result = check(env, "--deploy")
    assert result.returncode != 0 and "msp_console.E002" in result.stderr


def test_the_image_runs_as_a_user_and_checks_its_health():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    instructions = [line.split()[0] for line in dockerfile.splitlines() if line and line[0].isupper()]
    assert instructions.index("USER") < instructions.index("ENTRYPOINT")
    assert re.search(r"^USER console$", dockerfile, re.M) and "HEALTHCHECK" in instructions
    assert "collectstatic" in dockerfile and dockerfile.startswith("# ") and "-slim" in dockerfile
    compose = YAML(typ="safe").load((DOCKER / "compose.yml").read_text())
    assert not [name for name, service in compose["services"].items() if service.get("user") in ("root", "0")]
    # Published ports are on loopback only: a TLS proxy on the host is the way in.
    for service in compose["services"].values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port
