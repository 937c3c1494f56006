"""The four role groups (staff/roles.py: ROLES) with their permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from staff.roles import ensure_role_groups


def make_roles(apps, schema_editor):
    # Permissions are normally made after all migrations (post_migrate): make them now to use them.
    for config in apps.get_app_configs():
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    ensure_role_groups(apps)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=["Viewer", "Operator", "Approver", "Administrator"]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("staff", "0001_console_role"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("tenants", "0006_tags"),
        ("migrations_engine", "0006_readiness_and_wave_options"),
    ]

    operations = [migrations.RunPython(make_roles, remove_roles)]
