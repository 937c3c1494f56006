"""What each staff role may do. Every state-changing view, admin action, service and command asks here,
on top of the tenant grant (`tenants.access`).

Roles are Django groups: Viewer, Operator, Approver, Administrator, made by a data migration
(staff/migrations/0002_role_groups.py) and again after every migrate or flush when one is missing
(`ensure_role_groups`; a group that exists is left as an administrator may have changed it). A user may
hold several; superusers hold every permission.
"""

from __future__ import annotations

from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied

from staff.actors import Actor

CENSUS = "staff.run_census"
PLAN = "staff.plan_run"
MIGRATE = "staff.start_migration"
ROLLBACK = "staff.rollback_run"
APPROVE = "staff.approve_run"
WAVES = "staff.manage_waves"
EXPORTS = "staff.manage_exports"
CUSTOMERS = "staff.manage_customers"

# What each permission lets a person do, in the words a refusal uses.
WORDS = {
    CENSUS: "run a census",
    PLAN: "plan a migration",
    MIGRATE: "start, cancel or retry a pilot or full migration",
    ROLLBACK: "roll a migration back",
    APPROVE: "approve a full run",
    WAVES: "schedule or steer waves",
    EXPORTS: "schedule audit exports",
    CUSTOMERS: "add customers or change their consent",
}

# The permission a run of each mode needs, to start it and to cancel, retry or resume it.
FOR_MODE = {"plan": PLAN, "pilot": MIGRATE, "full": MIGRATE, "rollback": ROLLBACK}

_VIEW_MODELS = {
    "tenants": ["customertenant", "tag", "tenantconsent", "breakglassconfig", "censususer"],
    "migrations_engine": [
        "migrationrun",
        "runitem",
        "auditevent",
        "wave",
        "driftfinding",
        "driftcheck",
        "exportschedule",
        "exportfile",
    ],
}
VIEW = [f"{app}.view_{model}" for app, models in _VIEW_MODELS.items() for model in models]

# Each role group and its permissions ("app_label.codename"). Administrators also edit the rows that
# say who and what the console manages (tenants, break-glass, tags, waves, export schedules).
ROLES: dict[str, list[str]] = {
    "Viewer": VIEW,
    "Operator": [*VIEW, CENSUS, PLAN, MIGRATE, ROLLBACK],
    "Approver": [*VIEW, APPROVE],
    "Administrator": [
        *VIEW,
        CENSUS,
        PLAN,
        MIGRATE,
        ROLLBACK,
        APPROVE,
        WAVES,
        EXPORTS,
        CUSTOMERS,
        "tenants.add_customertenant",
        "tenants.change_customertenant",
        "tenants.change_breakglassconfig",
        "tenants.add_breakglassconfig",
        "tenants.add_tag",
        "tenants.change_tag",
        "migrations_engine.add_wave",
        "migrations_engine.change_wave",
        "migrations_engine.add_exportschedule",
        "migrations_engine.change_exportschedule",
    ],
}


def is_person(actor: Actor) -> bool:
    """True for a staff user (an object with a username); False for a process ("cli", "scheduler:…")."""
    return hasattr(actor, "has_perm")


def may(actor: Actor, permission: str) -> bool:
    """True when `actor` holds `permission`. A process acts with the host's authority: whoever can run
    a command on the host holds the database credentials already."""
    if not is_person(actor):
        return True
    return bool(actor.is_active and actor.has_perm(permission))


def require(actor: Actor, permission: str) -> None:
    """PermissionDenied, in words, unless `actor` holds `permission`."""
    if not may(actor, permission):
        raise PermissionDenied(
            f"Your role does not allow you to {WORDS.get(permission, permission)}. "
            "Ask a console administrator for a role that does."
        )


def resolve_actor(name: str) -> Actor:
    """A command's `--actor`: the active staff user of that name (their role and grants are checked),
    or the name itself for a process of the host."""
    user = get_user_model().objects.filter(username=name, is_active=True, is_staff=True).first()
    return user or name


def ensure_role_groups(apps=django_apps) -> None:
    """Make each role group that does not exist, with its permissions (`apps`: a migration's, or the
    project's). The permissions must exist already (Django makes them after migrating)."""
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in ROLES.items():
        group, created = Group.objects.get_or_create(name=name)
        if created:
            wanted = [tuple(perm.split(".")) for perm in perms]
            found = Permission.objects.filter(content_type__app_label__in={a for a, _ in wanted})
            group.permissions.set([p for p in found if (p.content_type.app_label, p.codename) in wanted])


def on_post_migrate(sender, apps=django_apps, **kwargs) -> None:
    """post_migrate receiver (also sent after a test database's flush): role groups back if missing."""
    ensure_role_groups(apps)
