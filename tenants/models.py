"""Customer tenants, their admin consent and their break-glass configuration."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Lower

from tenants.choices import CensusStatus, ConsentStatus, LicenceTier, MigrationState, PolicyState
from tenants.validators import break_glass_account_problems, validate_domain


class Tag(models.Model):
    """A label staff put on tenants (a customer segment, a ring, a region) to choose them for a wave."""

    name = models.CharField(max_length=60, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CustomerTenant(models.Model):
    """One customer's Microsoft Entra tenant, and the summary of its last census.

    The census columns are denormalised here so the fleet changelist can sort and filter
    hundreds of tenants without joining a history table.
    """

    tenant_id = models.UUIDField("Entra tenant id", unique=True)
    primary_domain = models.CharField(max_length=253, validators=[validate_domain])
    display_name = models.CharField(max_length=200)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    census_status = models.CharField(max_length=20, choices=CensusStatus, default=CensusStatus.NEVER)
    census_at = models.DateTimeField(null=True, blank=True)
    census_message = models.TextField(blank=True)
    licence = models.CharField(max_length=10, choices=LicenceTier, default=LicenceTier.UNKNOWN)
    licence_plans = models.JSONField(default=list, blank=True, help_text="Entra ID service plans seen")
    security_defaults = models.BooleanField(null=True, blank=True)
    ca_policy_count = models.PositiveIntegerField(null=True, blank=True)
    mfa_policy_state = models.CharField(max_length=40, choices=PolicyState, default=PolicyState.NONE)
    users_total = models.PositiveIntegerField(null=True, blank=True)
    per_user_enabled = models.PositiveIntegerField(
        "Enabled", null=True, blank=True, help_text="Users in this per-user MFA state"
    )
    per_user_enforced = models.PositiveIntegerField(
        "Enforced", null=True, blank=True, help_text="Users in this per-user MFA state"
    )
    per_user_disabled = models.PositiveIntegerField(
        "Disabled", null=True, blank=True, help_text="Users in this per-user MFA state"
    )
    mfa_registered = models.PositiveIntegerField(null=True, blank=True)
    registration_known = models.PositiveIntegerField(
        null=True, blank=True, help_text="Users in the registration report (the % denominator)"
    )
    census_detail = models.JSONField(default=dict, blank=True, help_text="Policies and notes from the census")
    census_generation = models.PositiveIntegerField(default=0, help_text="Which CensusUser rows are current")
    drift_detected = models.BooleanField(default=False, help_text="Set by the drift watch")
    tags = models.ManyToManyField(Tag, blank=True, related_name="tenants")

    # What the tenant is, migration-wise: the one field every list, chart, filter and export reads. Set
    # only by `refresh_migration_state` (migrations_engine/runs/tenant_state.py) after an event that changes
    # what the tenant is (a real run's item starting or ending, drift found or resolved, a census, a
    # consent or break-glass change); a plan never changes it.
    migration_state = models.CharField(
        max_length=20, choices=MigrationState, default=MigrationState.NOT_STARTED, db_index=True
    )
    migration_state_reason = models.TextField(blank=True, help_text="Why, in words (blocked, attention)")
    migration_state_run_id = models.PositiveIntegerField(null=True, blank=True, help_text="The run behind it")
    migration_state_at = models.DateTimeField(null=True, blank=True)
    # The latest plan (dry run) of the tenant: shown next to its state, never part of it.
    last_plan_run_id = models.PositiveIntegerField(null=True, blank=True)
    last_plan_at = models.DateTimeField(null=True, blank=True)
    last_plan_changes = models.PositiveIntegerField(null=True, blank=True, help_text="Changes the plan found")

    class Meta:
        ordering = ["display_name"]
        constraints = [
            models.UniqueConstraint(
                Lower("primary_domain"),
                name="%(app_label)s_%(class)s_unique_domain",
                violation_error_message="Another customer tenant already uses this domain.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.primary_domain})"

    def clean(self) -> None:
        if self.primary_domain:
            self.primary_domain = self.primary_domain.strip().lower()

    @property
    def mfa_registered_pct(self) -> float | None:
        """Share of users in the registration report who are MFA-registered, in percent."""
        if not self.registration_known:
            return None
        return round(100.0 * (self.mfa_registered or 0) / self.registration_known, 1)


class TenantConsent(models.Model):
    """The admin consent a customer granted to the MSP's multi-tenant app, as last verified.

    `roles` is what the last app-only token's `roles` claim held; it is the only trustworthy proof of
    consent (a callback's query string is not).
    """

    tenant = models.OneToOneField(CustomerTenant, on_delete=models.CASCADE, related_name="consent")
    status = models.CharField(max_length=10, choices=ConsentStatus, default=ConsentStatus.PENDING)
    granted_at = models.DateTimeField(null=True, blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    roles = models.JSONField(default=list, blank=True)
    missing_roles = models.JSONField(default=list, blank=True)
    last_verified_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name = "consent"

    def __str__(self) -> str:
        return f"Consent for {self.tenant.primary_domain}: {self.get_status_display()}"


class BreakGlassConfig(models.Model):
    """The emergency-access accounts that every policy must exclude and no run may touch.

    Accounts are named by UPN or object id, and/or a group whose members are break-glass accounts.
    Fewer resolvable, enabled accounts than `minimum_count` stops a tenant before any write.
    """

    tenant = models.OneToOneField(CustomerTenant, on_delete=models.CASCADE, related_name="break_glass")
    accounts = models.JSONField(default=list, blank=True, help_text="UPNs or object ids, one per entry")
    group_id = models.UUIDField(null=True, blank=True, help_text="A group whose members are break-glass")
    minimum_count = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "break-glass configuration"

    def __str__(self) -> str:
        return f"Break-glass for {self.tenant.primary_domain}"

    def clean(self) -> None:
        """Refuse, on the field at fault, a configuration no run could use (or one that would fail open)."""
        problems = break_glass_account_problems(self.accounts)
        if problems:
            raise ValidationError({"accounts": problems})
        self.accounts = [account.strip() for account in self.accounts]
        seen: set[str] = set()
        for account in self.accounts:
            if account.lower() in seen:
                problems.append(f"{account!r} is listed twice.")
            seen.add(account.lower())
        if problems:
            raise ValidationError({"accounts": problems})
        if not self.accounts and not self.group_id:
            raise ValidationError({"accounts": "Name at least one break-glass account or break-glass group."})
        # Only a group's members can make up a minimum above the accounts listed (the import says the same).
        listed = len(self.accounts)
        if not self.group_id and isinstance(self.minimum_count, int) and self.minimum_count > listed:
            raise ValidationError(
                {
                    "minimum_count": f"{self.minimum_count} is more than the {listed} accounts listed and no "
                    "break-glass group is named: no run could ever pass the break-glass guard."
                }
            )


class TenantGrant(models.Model):
    """Lets one staff user, or every member of one group (a team), see and act on one tenant.

    Deny by default: a staff user sees only tenants granted to them or their groups (superusers see all).
    """

    tenant = models.ForeignKey(CustomerTenant, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="tenant_grants",
    )
    group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="tenant_grants"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, group__isnull=True)
                | models.Q(user__isnull=True, group__isnull=False),
                name="%(app_label)s_%(class)s_user_or_group",
                violation_error_message="Grant a tenant to a user or to a group, not both.",
            ),
            models.UniqueConstraint(fields=["tenant", "user"], name="%(app_label)s_%(class)s_once_per_user"),
            models.UniqueConstraint(
                fields=["tenant", "group"], name="%(app_label)s_%(class)s_once_per_group"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user or self.group} → {self.tenant.primary_domain}"


class CensusUser(models.Model):
    """One user as the last census saw them: the per-user MFA report MSPs otherwise build in PowerShell.

    Rows of a census in progress carry the next generation; the tenant's `census_generation` names the
    complete set, so a census that fails half-way leaves the previous report in place.
    """

    tenant = models.ForeignKey(CustomerTenant, on_delete=models.CASCADE, related_name="census_users")
    generation = models.PositiveIntegerField()
    user_id = models.CharField(max_length=64)
    upn = models.CharField(max_length=320)
    display_name = models.CharField(max_length=256, blank=True)
    user_type = models.CharField(max_length=20, blank=True)
    account_enabled = models.BooleanField(default=True)
    per_user_state = models.CharField(max_length=20, blank=True)
    mfa_registered = models.BooleanField(null=True)
    methods = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "generation", "user_id"], name="%(app_label)s_%(class)s_once_per_census"
            ),
        ]
        indexes = [
            # the tenant page's "users not registered" and the CSV export, per tenant and generation
            models.Index(fields=["tenant", "generation", "mfa_registered"], name="tenants_censususer_report"),
        ]

    def __str__(self) -> str:
        return f"{self.upn}: {self.per_user_state}"


def _consent_state_expiry():
    """When a consent state made now expires (CONSENT_STATE_TTL_SECONDS, one hour by default)."""
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() + timedelta(seconds=getattr(settings, "CONSENT_STATE_TTL_SECONDS", 3600))


class ConsentRequest(models.Model):
    """One admin-consent link handed out by a staff user: the `state` the consent callback must bring back.

    Only the SHA-256 of the state is stored (a database reader cannot forge a callback). A state is
    single-use (`used_at`, set by compare-and-set), expires, and is bound to the staff user and to the
    session it was made in, so a link that leaks cannot be completed from another browser.
    """

    tenant = models.ForeignKey(CustomerTenant, on_delete=models.CASCADE, related_name="consent_requests")
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    state_hash = models.CharField(max_length=64, help_text="SHA-256 (hex) of the state sent to Microsoft")
    session_key_hash = models.CharField(max_length=64, help_text="SHA-256 (hex) of the staff session key")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(default=_consent_state_expiry)
    used_at = models.DateTimeField(null=True, blank=True)
    result = models.CharField(max_length=1000, blank=True, help_text='"granted", "partial: …", "refused: …"')

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["state_hash"],
                name="%(app_label)s_%(class)s_unique_state",
                violation_error_message="This consent state is already in use.",
            ),
        ]

    def __str__(self) -> str:
        return f"Consent request for {self.tenant.primary_domain} by {self.staff}"
