"""`manage.py seed_demo --fleet FILE [--admin-user NAME]`: add the simulator's demo tenants and an admin.

The admin's password comes from DJANGO_SUPERUSER_PASSWORD (as for `createsuperuser`; what the demo and
docker/compose.yml use: it stays out of the process list) or `--admin-password=VALUE`. Written with `=`,
a value that starts with "-" is the option's value; as a separate word argparse reads it as an option.

A superuser always needs a second factor: DJANGO_SUPERUSER_TOTP_KEY (hex, as django-otp stores it) gives
the new admin a confirmed authenticator with that key, and DJANGO_SUPERUSER_BACKUP_CODES (comma-separated)
single-use backup codes. Without them the admin enrols an authenticator at the first sign-in.

When the fleet has the simulator's MSP tenant (`staff_sign_in`), its staff groups and app role are mapped
to the console's roles, and the demo tenants granted to them, for the Entra ID sign-in.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from msp_console.words import counted
from staff.models import EntraRoleMapping
from tenants.models import CustomerTenant, TenantGrant
from tenants.services import add_tenant, set_break_glass


class Command(BaseCommand):
    help = "Add the tenants listed in a simulator fleet.json (idempotent) and optionally an admin user."

    def add_arguments(self, parser):
        parser.add_argument(
            "--fleet", required=True, help="fleet.json written by `python -m graph_sim serve`"
        )
        parser.add_argument("--admin-user", default="", help="create this superuser if missing")
        parser.add_argument(
            "--admin-password",
            default="",
            help=(
                "its password, written --admin-password=VALUE (a VALUE starting with '-' is fine then); "
                "better DJANGO_SUPERUSER_PASSWORD, as for createsuperuser, which no process list shows"
            ),
        )

    def handle(self, *args, **options):
        password = options["admin_password"] or os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        if options["admin_user"] and not password:
            raise CommandError("--admin-user needs --admin-password or DJANGO_SUPERUSER_PASSWORD")
        try:
            fleet = json.loads(Path(options["fleet"]).read_text())
            entries = fleet["tenants"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CommandError(f"{options['fleet']} is not a simulator fleet.json: {exc}") from exc
        added = 0
        with transaction.atomic():
            for entry in entries:
                if CustomerTenant.objects.filter(tenant_id=entry["tenant_id"]).exists():
                    continue
                try:
                    tenant = add_tenant(
                        tenant_id=entry["tenant_id"],
                        domain=entry["domain"],
                        display_name=entry["display_name"],
                        notes=entry.get("notes", ""),
                        actor="demo",
                    )
                    if entry.get("break_glass_upns"):
                        set_break_glass(tenant, accounts=entry["break_glass_upns"], actor="demo")
                except ValidationError as exc:
                    raise CommandError(f"Tenant {entry.get('domain')!r}: {'; '.join(exc.messages)}") from exc
                added += 1
        self.stdout.write(f"{counted(added, 'tenant')} added, {len(entries) - added} already present")
        if fleet.get("staff_sign_in"):
            self._entra_mappings(fleet["staff_sign_in"], entries)

        if options["admin_user"]:
            users = get_user_model()
            if not users.objects.filter(username=options["admin_user"]).exists():
                admin = users.objects.create_superuser(options["admin_user"], "", password)
                self._second_factor(admin)
                self.stdout.write(f"admin user {options['admin_user']!r} created")

    def _entra_mappings(self, staff: dict, entries: list[dict]) -> None:
        """The demo MSP's Entra groups and app role → console roles, all in the team "Demo staff", which
        holds grants on every demo tenant (only when no mapping exists yet)."""
        if EntraRoleMapping.objects.exists():
            return
        team, _ = Group.objects.get_or_create(name="Demo staff")
        for entry in entries:
            tenant = CustomerTenant.objects.get(tenant_id=entry["tenant_id"])
            TenantGrant.objects.get_or_create(tenant=tenant, group=team)
        groups = {g["displayName"]: g["id"] for g in staff.get("groups", [])}
        wanted = [
            ("group", groups.get("Console Operators"), "Operator"),
            ("group", groups.get("Console Administrators"), "Administrator"),
            ("app_role", "Console.Approver", "Approver"),
        ]
        for kind, value, role in wanted:
            if value:
                for group in (Group.objects.get(name=role), team):
                    EntraRoleMapping.objects.create(kind=kind, value=value, group=group, note="demo")
        self.stdout.write(
            "Entra ID sign-in mapped: Console Operators, Console Administrators, Console.Approver"
        )

    def _second_factor(self, admin) -> None:
        key = os.environ.get("DJANGO_SUPERUSER_TOTP_KEY", "").strip()
        if key:
            try:
                bytes.fromhex(key)
            except ValueError as exc:
                raise CommandError("DJANGO_SUPERUSER_TOTP_KEY must be hex (e.g. 40 hex digits)") from exc
            TOTPDevice.objects.create(user=admin, name="Authenticator app", key=key, confirmed=True)
        codes = [
            c.strip() for c in os.environ.get("DJANGO_SUPERUSER_BACKUP_CODES", "").split(",") if c.strip()
        ]
        if codes:
            device = StaticDevice.objects.create(user=admin, name="Backup codes", confirmed=True)
            StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
