"""State changes for customer tenants. Views, admin actions and commands call these, never the ORM.

Every function takes a keyword-only `actor` (a staff user, or a string such as "cli" or "scheduler")
so the audit log added with the pipeline can say who did what.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from migrations_engine.census.read import CensusResult
from staff.actors import Actor, actor_label
from tenants.choices import CensusStatus, ConsentStatus
from tenants.models import BreakGlassConfig, CensusUser, CustomerTenant, TenantConsent
from tenants.validators import parse_tenant_id, validate_domain

logger = logging.getLogger(__name__)


@transaction.atomic
def add_tenant(
    *, tenant_id: str, domain: str, display_name: str, notes: str = "", actor: Actor
) -> CustomerTenant:
    """Add a customer tenant. Bad or duplicate input raises ValidationError and changes nothing."""
    tid = parse_tenant_id(tenant_id)
    domain = domain.strip().lower()
    validate_domain(domain)
    if not display_name.strip():
        raise ValidationError("A display name is required.")
    if CustomerTenant.objects.filter(tenant_id=tid).exists():
        raise ValidationError(f"Tenant {tid} is already a customer.")
    if CustomerTenant.objects.filter(primary_domain__iexact=domain).exists():
        raise ValidationError(f"Another customer tenant already uses {domain}.")
    tenant = CustomerTenant.objects.create(
        tenant_id=tid, primary_domain=domain, display_name=display_name.strip(), notes=notes
    )
    TenantConsent.objects.create(tenant=tenant)
    logger.info("tenant added: %s by %s", tenant, actor_label(actor))
    return tenant


@transaction.atomic
def set_break_glass(
    tenant: CustomerTenant,
    *,
    accounts: list[str],
    group_id: str | None = None,
    minimum_count: int = 1,
    actor: Actor,
) -> BreakGlassConfig:
    """Set (replace) a tenant's break-glass configuration after validating every entry. A bad value raises
    ValidationError naming its field (`BreakGlassConfig.clean`) and, in this transaction, changes nothing."""
    config, _ = BreakGlassConfig.objects.get_or_create(tenant=tenant)
    config.accounts = accounts  # the model's clean() checks its shape and strips each entry
    config.group_id = group_id or None
    config.minimum_count = minimum_count
    config.full_clean(exclude=["tenant"])
    config.save()
    logger.info("break-glass set for %s by %s: %d accounts", tenant, actor_label(actor), len(config.accounts))
    return config


def _consent_status(result: CensusResult) -> str:
    if result.status == CensusStatus.NO_CONSENT:
        return ConsentStatus.PENDING
    if result.status == CensusStatus.ERROR and not result.roles:
        return ConsentStatus.ERROR
    return ConsentStatus.PARTIAL if result.missing_roles else ConsentStatus.GRANTED


class CensusWriter:
    """Writes a census's per-user rows as the tenant's next generation while the census streams.

    `record_census` makes them current (and drops the older ones) when the census read users;
    otherwise they are dropped and the previous report stays.
    """

    def __init__(self, tenant: CustomerTenant) -> None:
        self.tenant = tenant
        self.generation = tenant.census_generation + 1
        self.rows = 0
        CensusUser.objects.filter(tenant=tenant, generation__gte=self.generation).delete()

    def write(self, rows: list[dict[str, Any]]) -> None:
        CensusUser.objects.bulk_create(
            [CensusUser(tenant=self.tenant, generation=self.generation, **row) for row in rows],
            batch_size=1000,
        )
        self.rows += len(rows)

    async def awrite(self, rows: list[dict[str, Any]]) -> None:
        """The census's async sink."""
        from asgiref.sync import sync_to_async

        await sync_to_async(self.write, thread_sensitive=True)(rows)

    def registration(self, rows: list[dict[str, Any]]) -> None:
        """Fill in a page of the registration report on the rows already written: one UPDATE per
        distinct answer (a page holds a handful), not one per user."""
        groups: dict[tuple[Any, tuple[str, ...]], list[str]] = {}
        for row in rows:
            groups.setdefault((row["mfa_registered"], tuple(row["methods"])), []).append(row["user_id"])
        mine = CensusUser.objects.filter(tenant=self.tenant, generation=self.generation)
        for (registered, methods), user_ids in groups.items():
            mine.filter(user_id__in=user_ids).update(mfa_registered=registered, methods=list(methods))

    async def aregistration(self, rows: list[dict[str, Any]]) -> None:
        """The census's async registration sink."""
        from asgiref.sync import sync_to_async

        await sync_to_async(self.registration, thread_sensitive=True)(rows)

    @staticmethod
    async def aclose() -> None:
        """Close the database connection of the thread the sink wrote from (call once, at the end)."""
        from asgiref.sync import sync_to_async
        from django.db import connections

        await sync_to_async(connections.close_all, thread_sensitive=True)()


@transaction.atomic
def record_census(
    tenant: CustomerTenant, result: CensusResult, *, actor: Actor, writer: CensusWriter | None = None
) -> CustomerTenant:
    """Store a census on the tenant (summary columns + detail) and what it showed about consent."""
    now = timezone.now()
    tenant = CustomerTenant.objects.select_for_update().get(pk=tenant.pk)
    tenant.census_status = result.status
    tenant.census_at = now
    tenant.census_message = result.message
    tenant.licence = result.licence
    tenant.licence_plans = result.licence_plans
    tenant.security_defaults = result.security_defaults
    tenant.ca_policy_count = result.ca_policy_count
    tenant.mfa_policy_state = result.mfa_policy_state
    tenant.users_total = result.users_total
    per_user = result.per_user or {}
    tenant.per_user_enabled = per_user.get("enabled") if result.per_user is not None else None
    tenant.per_user_enforced = per_user.get("enforced") if result.per_user is not None else None
    tenant.per_user_disabled = per_user.get("disabled") if result.per_user is not None else None
    tenant.mfa_registered = result.mfa_registered
    tenant.registration_known = result.registration_known
    tenant.census_detail = {
        "policies": result.policies,
        "per_user": result.per_user,
        "notes": result.notes,
        "missing_roles": result.missing_roles,
        "source": {"kind": "census", "at": now.isoformat()},
    }
    if writer is not None:
        if result.users_total is not None and writer.rows == result.users_total:
            tenant.census_generation = writer.generation
            CensusUser.objects.filter(tenant=tenant, generation__lt=writer.generation).delete()
        else:
            CensusUser.objects.filter(tenant=tenant, generation=writer.generation).delete()
    tenant.save()

    consent, _ = TenantConsent.objects.get_or_create(tenant=tenant)
    status = _consent_status(result)
    if status != ConsentStatus.ERROR:
        consent.roles = result.roles
        consent.missing_roles = result.missing_roles
        consent.last_verified_at = now
        consent.last_error = ""
        if status != ConsentStatus.PENDING and consent.granted_at is None:
            consent.granted_at = now
    else:
        consent.last_error = result.message
    consent.status = status
    consent.save()
    logger.info("census recorded for %s by %s: %s", tenant, actor_label(actor), result.status)
    return tenant


@dataclass(frozen=True)
class VerifiedRead:
    """What a run's verify step read back, to become the tenant's census (`record_verified_census`)."""

    run_id: int
    what: str  # "verify" | "verify_rollback"
    states: dict[str, str]  # user id -> the per-user MFA state read
    users: list[dict[str, Any]]  # the snapshot's users: user_id, upn, user_type, account_enabled,
    #                              per_user_state, mfa_registered (those the step did not read keep theirs)
    security_defaults: bool | None = None  # None: not read, the census's value stays
    mfa_policy_state: str | None = None  # None: not known, the census's value stays


@transaction.atomic
def record_verified_census(tenant: CustomerTenant, read: VerifiedRead) -> CustomerTenant:
    """A new census generation from what verify read, so the counts, the policy column and the census
    CSV are right the moment a run ends. Display names, methods and registration come from the
    previous census where it knew the user."""
    tenant = CustomerTenant.objects.select_for_update().get(pk=tenant.pk)
    previous = {
        row["user_id"]: row
        for row in CensusUser.objects.filter(tenant=tenant, generation=tenant.census_generation).values(
            "user_id", "display_name", "mfa_registered", "methods"
        )
    }
    # Above every generation of the tenant, so a census streaming its rows at this moment (the next
    # number, CensusWriter) is neither overwritten nor collided with.
    top = CensusUser.objects.filter(tenant=tenant).aggregate(top=Max("generation"))["top"] or 0
    generation = max(tenant.census_generation, top) + 1
    counts = {"enabled": 0, "enforced": 0, "disabled": 0}
    registered = known = 0
    rows = []
    for user in read.users:
        before = previous.get(user["user_id"], {})
        state = read.states.get(user["user_id"], user["per_user_state"])
        counts[state] = counts.get(state, 0) + 1
        mfa = before.get("mfa_registered", user.get("mfa_registered"))
        known += mfa is not None
        registered += bool(mfa)
        rows.append(
            CensusUser(
                tenant=tenant,
                generation=generation,
                user_id=user["user_id"],
                upn=user["upn"],
                display_name=before.get("display_name", ""),
                user_type=user.get("user_type", ""),
                account_enabled=user.get("account_enabled", True),
                per_user_state=state,
                mfa_registered=mfa,
                methods=before.get("methods") or [],
            )
        )
    CensusUser.objects.bulk_create(rows, batch_size=1000)
    CensusUser.objects.filter(tenant=tenant, generation__lte=tenant.census_generation).delete()
    tenant.census_generation = generation
    tenant.census_at = timezone.now()
    tenant.users_total = len(rows)
    tenant.per_user_enabled, tenant.per_user_enforced = counts["enabled"], counts["enforced"]
    tenant.per_user_disabled = counts["disabled"]
    tenant.mfa_registered, tenant.registration_known = registered, known
    if read.security_defaults is not None:
        tenant.security_defaults = read.security_defaults
    if read.mfa_policy_state is not None:
        tenant.mfa_policy_state = read.mfa_policy_state
    tenant.census_detail = {
        **(tenant.census_detail or {}),
        "source": {"kind": read.what, "run_id": read.run_id, "at": tenant.census_at.isoformat()},
    }
    tenant.save()
    logger.info("census of %s from %s of run %s: %s users", tenant, read.what, read.run_id, len(rows))
    return tenant
