"""The console's own permissions, beyond Django's add/change/delete/view of each model."""

from __future__ import annotations

from django.db import models


class ConsoleRole(models.Model):
    """No table: this model only holds the permissions that the role groups (`staff.roles`) are made of.

    Django's model permissions say who may edit a row; these say who may act on customers' tenants
    (every action that reaches Graph, or could).
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("run_census", "Run a census (reads each tenant; writes nothing)"),
            ("plan_run", "Plan a migration (a dry run: reads, writes nothing)"),
            ("start_migration", "Start a pilot or full migration, remediate drift"),
            ("rollback_run", "Roll a migration back"),
            ("approve_run", "Approve a full run another staff member started"),
            ("manage_waves", "Schedule, pause, resume and cancel waves"),
            ("manage_exports", "Schedule and stop audit exports"),
            ("manage_customers", "Add and import customers, send consent links, re-check consent"),
        ]

    def __str__(self) -> str:
        return "console role permissions"
