from django.apps import AppConfig


class StaffConfig(AppConfig):
    """Staff roles, sign-in (local accounts and Entra ID), second factor, lockout and sessions."""

    name = "staff"
    verbose_name = "Staff"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Why here: the receivers need the models loaded (audit rows), so they connect once apps are ready.
        from axes.signals import user_locked_out

        from staff.lockout import on_locked_out

        user_locked_out.connect(on_locked_out, dispatch_uid="staff.lockout.audit")
