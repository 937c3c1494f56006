from django.apps import AppConfig


class StaffConfig(AppConfig):
    """Staff roles, sign-in (local accounts and Entra ID), second factor, lockout and sessions."""

    name = "staff"
    verbose_name = "Staff"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Why here: the receivers need the models loaded (audit rows), so they connect once apps are ready.
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_logged_in
        from django.db.models.signals import post_migrate

        from staff import checks  # noqa: F401 - registers the deploy checks
        from staff.lockout import on_locked_out
        from staff.roles import on_post_migrate
        from staff.sign_ins import on_signed_in

        user_locked_out.connect(on_locked_out, dispatch_uid="staff.lockout.audit")
        user_logged_in.connect(on_signed_in, dispatch_uid="staff.sign_ins.audit")
        # Sent once per app, in INSTALLED_APPS order, each time after that app's permissions were made:
        # ours comes after every app whose permissions the roles hold.
        post_migrate.connect(on_post_migrate, sender=self, dispatch_uid="staff.roles.groups")
