"""The demo admin's password: never one a command line reads as an option, always one the console's own
validators accept, and `seed_demo` takes one that starts with "-" anyway."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from scripts.demo import demo_password

DASHED = "-starts-with-a-dash-Q7"


@pytest.fixture
def fleet_file(tmp_path):
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({"tenants": []}))
    return str(path)


def test_the_demo_password_never_starts_with_a_dash_and_is_never_the_same():
    drawn = [demo_password() for _ in range(20_000)]  # a 1-in-64 flaw shows up ~300 times here
    assert [p for p in drawn if p.startswith("-")] == []
    assert len(set(drawn)) == len(drawn)
    assert all(len(p) == 19 and p[0].isalnum() for p in drawn)


@pytest.mark.django_db
def test_the_demo_password_passes_the_consoles_password_validators():
    admin = get_user_model()(username="admin")
    with pytest.raises(ValidationError):  # the validators are on: the username inside is refused
        validate_password("Qx7admin-k2Vp-9zRt", user=admin)
    for _ in range(500):
        validate_password(demo_password(), user=admin)  # raises ValidationError naming the rule


@pytest.mark.django_db
def test_seed_demo_takes_a_password_starting_with_a_dash_written_with_equals(fleet_file):
    call_command("seed_demo", "--fleet", fleet_file, "--admin-user", "admin", f"--admin-password={DASHED}")

    assert get_user_model().objects.get(username="admin").check_password(DASHED)


@pytest.mark.django_db
def test_seed_demo_takes_a_password_starting_with_a_dash_from_the_environment(fleet_file, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", DASHED)

    call_command("seed_demo", "--fleet", fleet_file, "--admin-user", "admin")

    assert get_user_model().objects.get(username="admin").check_password(DASHED)


@pytest.mark.django_db
def test_seed_demo_without_a_password_creates_no_admin(fleet_file, monkeypatch):
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)

    with pytest.raises(CommandError, match="--admin-user needs --admin-password"):
        call_command("seed_demo", "--fleet", fleet_file, "--admin-user", "admin")

    assert not get_user_model().objects.filter(username="admin").exists()
