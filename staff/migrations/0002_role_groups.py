"""The four role groups and their permissions, as shipped. A later change of a role is a new migration."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW = [
    f"{app}.view_{model}"
    for app, models in {
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
    }.items()
    for model in models
]
ACT = ["staff.run_census", "staff.plan_run", "staff.start_migration", "staff.rollback_run"]
ADMIN = [
    *ACT,
    "staff.approve_run",
    "staff.manage_waves",
    "staff.manage_exports",
    "staff.manage_customers",
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
]
ROLES = {
    "Viewer": VIEW,
    "Operator": [*VIEW, *ACT],
    "Approver": [*VIEW, "staff.approve_run"],
    "Administrator": [*VIEW, *ADMIN],
}


def make_roles(apps, schema_editor):
    # Permissions are normally made after all migrations (post_migrate): make them now to use them.
    for config in apps.get_app_configs():
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        for perm in perms:
            app_label, codename = perm.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("staff", "0001_console_role"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("tenants", "0006_tags"),
        ("migrations_engine", "0006_readiness_and_wave_options"),
    ]

    operations = [migrations.RunPython(make_roles, remove_roles)]
