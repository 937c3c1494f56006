"""Staff sign-in through the MSP's own Entra ID: which Entra groups or app roles give which console
group (a role group, a team holding tenant grants, or both), and which Entra account is which staff user.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models


class EntraRoleMapping(models.Model):
    """Members of an Entra group (by object id), or holders of an app role (by its value), are put in
    `group` at each Entra ID sign-in, and taken out of it at the next one when they no longer are."""

    GROUP = "group"
    APP_ROLE = "app_role"
    KINDS = [(GROUP, "Entra group (object id)"), (APP_ROLE, "App role (value)")]

    kind = models.CharField(max_length=10, choices=KINDS, default=GROUP)
    value = models.CharField(
        max_length=120,
        help_text="The group's object id (a GUID, from Entra ID › Groups) or the app role's value "
        "(e.g. Console.Operator, from the app registration's App roles).",
    )
    group = models.ForeignKey(
        Group,
        on_delete=models.CASCADE,
        related_name="entra_mappings",
        help_text="The console group it gives: a role (Viewer, Operator, Approver, Administrator) "
        "and/or a team that holds tenant grants.",
    )
    note = models.CharField(max_length=200, blank=True, help_text="What this Entra group is, for people.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "Entra ID role mapping"
        constraints = [
            models.UniqueConstraint(fields=["kind", "value", "group"], name="staff_entra_mapping_unique")
        ]
        ordering = ["group__name", "kind", "value"]

    def __str__(self) -> str:
        what = "group" if self.kind == self.GROUP else "app role"
        return f"Entra {what} {self.value} → {self.group.name}"

    def clean(self) -> None:
        self.value = (self.value or "").strip()
        if self.kind == self.GROUP:
            try:
                self.value = str(uuid.UUID(self.value))
            except ValueError:
                raise ValidationError(
                    {
                        "value": "An Entra group is named by its object id, a GUID such as "
                        "0b6e2f6c-4d8a-4f0e-9a53-3c7d2e1f9b40 (Entra ID › Groups › the group › Object ID)."
                    }
                ) from None
        elif not self.value or any(c.isspace() for c in self.value):
            raise ValidationError({"value": "An app role's value has no spaces, e.g. Console.Operator."})


class EntraIdentity(models.Model):
    """The Entra ID account (tenant id + object id, which never change) a staff user signs in with."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="entra")
    tenant_id = models.CharField(max_length=36)
    object_id = models.CharField(max_length=36)
    upn = models.CharField("sign-in name", max_length=254, help_text="As of the last sign-in.")
    last_sign_in = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "Entra ID account"
        constraints = [
            models.UniqueConstraint(fields=["tenant_id", "object_id"], name="staff_entra_identity_unique")
        ]

    def __str__(self) -> str:
        return f"{self.upn} ({self.object_id})"
