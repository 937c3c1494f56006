"""Production settings: `check --deploy` is clean, and the console refuses dangerous combinations."""

from __future__ import annotations

import datetime
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR")


def app_certificate(tmp_path, *, not_after=None, name="app") -> tuple[str, str]:
    """A key and certificate (with its issuing CA after it, a chain) as files; their paths."""
    import trustme

    cert = trustme.CA().issue_cert("msp-mfa-console.example.com", not_after=not_after)
    key_file, cert_file = tmp_path / f"{name}-key.pem", tmp_path / f"{name}-cert.pem"
    key_file.write_bytes(cert.private_key_pem.bytes())
    cert_file.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    return str(key_file), str(cert_file)


def production_env(tmp_path, **changes: str) -> dict[str, str]:
    """What "production settings" means: DEBUG off, a long random key, real host names, an authenticated
    Redis, the Microsoft endpoints, certificate credentials, and the secure defaults that follow from
    DEBUG being off."""
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    key_file, cert_file = app_certificate(tmp_path)
    env.update(
        GRAPH_CLIENT_ID="11111111-2222-3333-4444-555555555555",
        GRAPH_CLIENT_PRIVATE_KEY_FILE=key_file,
        GRAPH_CLIENT_CERTIFICATE_FILE=cert_file,
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
        ({"STAFF_SECOND_FACTOR_REQUIRED": "False"}, "staff.E001", "a guessed password alone"),
        ({"AXES_ENABLED": "False"}, "staff.E002", "never locked out"),
        ({"STAFF_IDLE_MINUTES": "480"}, "staff.W001", "STAFF_IDLE_MINUTES is 480"),
        ({"SESSION_COOKIE_AGE": "1209600"}, "staff.W002", "Sessions last 1209600 s"),
        (
            {"STAFF_ENTRA_TENANT_ID": "t", "STAFF_ENTRA_CLIENT_ID": "c", "STAFF_ENTRA_CLIENT_SECRET": "s"}
            | {"STAFF_ENTRA_REQUIRE_MFA": "False"},
            "staff.W003",
            "with a password alone opens the console",
        ),
        (
            {"STAFF_ENTRA_TENANT_ID": "t", "STAFF_ENTRA_CLIENT_ID": "c", "STAFF_ENTRA_AUTH_CONTEXT": ""},
            "staff.E004",
            "no Entra ID sign-in could prove MFA",
        ),
    ],
)
def test_check_deploy_refuses_weak_staff_sign_in(tmp_path, changes, check_id, words):
    """Second factor, lockout and session age: each weakened alone fails `check --deploy`."""
    result = check(production_env(tmp_path, **changes), "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert check_id in result.stderr and words in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("changes", "check_id", "words"),
    [
        ({"GRAPH_BASE_URL": "https://127.0.0.1:8443"}, "msp_console.E001", "GRAPH_BASE_URL"),
        ({"GRAPH_AUTHORITY_HOST": "https://localhost:8443"}, "msp_console.E001", "GRAPH_AUTHORITY_HOST"),
        ({"GRAPH_BASE_URL": "https://[::1]:8443"}, "msp_console.E001", "loopback"),
        # The compose demo's simulator is not on loopback; nor is any other host that is not Microsoft's.
        ({"GRAPH_BASE_URL": "https://graph-sim:8443"}, "msp_console.E001", "not graph.microsoft.com"),
        (
            {"GRAPH_AUTHORITY_HOST": "https://login.example.net"},
            "msp_console.E001",
            "not login.microsoftonline.com",
        ),
        (
            {"STAFF_ENTRA_AUTHORITY_HOST": "https://login.example.net"},
            "msp_console.E001",
            "STAFF_ENTRA_AUTHORITY_HOST is https://login.example.net",
        ),
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


def test_check_deploy_refuses_an_unusable_app_credential(tmp_path):
    other_key, _ = app_certificate(tmp_path, name="other")
    expired_key, expired_cert = app_certificate(
        tmp_path, name="expired", not_after=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    )
    cases = [
        ({"GRAPH_CLIENT_ID": None}, "GRAPH_CLIENT_ID is not set"),
        ({"GRAPH_CLIENT_PRIVATE_KEY_FILE": other_key}, "does not belong to the first certificate"),
        (
            {"GRAPH_CLIENT_PRIVATE_KEY_FILE": expired_key, "GRAPH_CLIENT_CERTIFICATE_FILE": expired_cert},
            "expired on 2020-01-01",
        ),
        ({"GRAPH_CLIENT_CERTIFICATE_THUMBPRINT": "AB" * 20}, "is not the thumbprint of the certificate"),
        ({"GRAPH_CLIENT_PRIVATE_KEY_FILE": str(tmp_path / "missing.pem")}, "cannot be read"),
    ]
    for changes, words in cases:
        result = check(production_env(tmp_path, **changes), "--deploy")
        assert result.returncode != 0, changes
        assert "msp_console.E004" in result.stderr and words in result.stderr, (changes, result.stderr)
    # Not part of the checks that run before every command: a console without Graph credentials yet
    # still migrates and serves its pages.
    assert check(production_env(tmp_path, GRAPH_CLIENT_ID=None)).returncode == 0


def test_check_deploy_warns_about_a_secret_and_a_certificate_near_its_end(tmp_path):
    secret = production_env(
        tmp_path,
        GRAPH_CLIENT_PRIVATE_KEY_FILE=None,
        GRAPH_CLIENT_CERTIFICATE_FILE=None,
        GRAPH_CLIENT_SECRET="s",
    )
    result = check(secret, "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0 and "msp_console.W001" in result.stderr, result.stderr
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=10)
    key_file, cert_file = app_certificate(tmp_path, name="soon", not_after=soon)
    env = production_env(
        tmp_path, GRAPH_CLIENT_PRIVATE_KEY_FILE=key_file, GRAPH_CLIENT_CERTIFICATE_FILE=cert_file
    )
    result = check(env, "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0, result.stderr
    assert "msp_console.W002" in result.stderr and f"expires on {soon:%Y-%m-%d}" in result.stderr
    # The same thumbprint Entra shows is accepted alongside the file.
    from migrations_engine.graph.config import certificate_thumbprint

    thumbprint = certificate_thumbprint(Path(cert_file).read_text())
    env["GRAPH_CLIENT_CERTIFICATE_THUMBPRINT"] = ":".join(thumbprint[i : i + 2] for i in range(0, 40, 2))
    result = check(env, "--deploy")
    assert "msp_console.E004" not in result.stderr and "msp_console.W002" in result.stderr
