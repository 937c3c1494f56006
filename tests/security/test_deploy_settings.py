"""Production settings: `check --deploy` is clean, and the console refuses dangerous combinations."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR")


def production_env(tmp_path, **changes: str) -> dict[str, str]:
    """What "production settings" means: DEBUG off, a long random key, real host names, an authenticated
    Redis, the Microsoft endpoints, and the secure defaults that follow from DEBUG being off."""
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE="msp_console.settings",
        DEBUG="False",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="console.example.com",
        CSRF_TRUSTED_ORIGINS="https://console.example.com",
        SITE_URL="https://console.example.com",
        REDIS_URL="redis://:a-redis-password@redis.internal:6379/0",
        DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
    )
    env.update(changes)
    return {k: v for k, v in env.items() if v is not None}


def check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = check(production_env(tmp_path), "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_is_clean_behind_a_tls_proxy(tmp_path):
    env = production_env(tmp_path, BEHIND_TLS_PROXY="1", SECURE_SSL_REDIRECT="True")
    result = check(env, "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django;django.setup();from django.conf import settings as s;"
            "print(s.SECURE_PROXY_SSL_HEADER, s.SECURE_HSTS_SECONDS, s.X_FRAME_OPTIONS)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.stdout.split() == ["('HTTP_X_FORWARDED_PROTO',", "'https')", "31536000", "DENY"], (
        shown.stderr
    )


def test_unsafe_overrides_are_reported_by_check_deploy(tmp_path):
    env = production_env(tmp_path, SECURE_HSTS_SECONDS="0", SESSION_COOKIE_SECURE="False")
    result = check(env, "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "security.W004" in result.stderr and "security.W012" in result.stderr


@pytest.mark.parametrize(
    ("changes", "check_id", "words"),
    [
        ({"GRAPH_BASE_URL": "https://127.0.0.1:8443"}, "msp_console.E001", "GRAPH_BASE_URL"),
        ({"GRAPH_AUTHORITY_HOST": "https://localhost:8443"}, "msp_console.E001", "GRAPH_AUTHORITY_HOST"),
        ({"GRAPH_BASE_URL": "https://[::1]:8443"}, "msp_console.E001", "loopback"),
        ({"SECRET_KEY": None}, "msp_console.E002", "SECRET_KEY is empty"),
        ({"SECRET_KEY": "short-key"}, "msp_console.E002", "shorter than 50"),
        ({"SECRET_KEY": "a" * 80}, "msp_console.E002", "too repetitive"),
        ({"SECRET_KEY": "change-me-to-a-long-random-string"}, "msp_console.E002", "placeholder"),
        ({"REDIS_URL": "redis://redis.internal:6379/0"}, "msp_console.E003", "no password"),
        ({"REDIS_URL": "redis://user@redis.internal:6379/0"}, "msp_console.E003", "no password"),
        ({"REDIS_URL": None}, "msp_console.E003", "no password"),  # the local default
    ],
)
def test_production_refuses_dangerous_settings(tmp_path, changes, check_id, words):
    result = check(production_env(tmp_path, **changes))
    assert result.returncode != 0
    assert check_id in result.stderr and words in result.stderr, result.stderr


def test_the_simulator_is_allowed_in_production_only_on_purpose(tmp_path):
    env = production_env(tmp_path, GRAPH_BASE_URL="https://127.0.0.1:8443", ALLOW_SIMULATOR="1")
    result = check(env)
    assert result.returncode == 0, result.stderr


def test_the_checks_stay_quiet_in_debug(tmp_path):
    env = production_env(
        tmp_path, DEBUG="True", SECRET_KEY=None, REDIS_URL=None, GRAPH_BASE_URL="https://127.0.0.1:1"
    )
    result = check(env)
    assert result.returncode == 0, result.stderr


def test_a_worker_refuses_to_start_with_production_settings_on_the_simulator(tmp_path):
    env = production_env(tmp_path, GRAPH_BASE_URL="https://127.0.0.1:8443")
    result = subprocess.run(
        [sys.executable, "manage.py", "rqworker", "default", "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "msp_console.E001" in result.stderr
