"""What a verify step read back becomes the tenant's census (tenants.services.record_verified_census):
the per-user states it read over the snapshot's users, and the policy and security-defaults state it
confirmed. A failure here is logged, never the run's: the migration itself is verified."""

from __future__ import annotations

import logging

from migrations_engine.models import UserSnapshot
from migrations_engine.steps.base import StepContext
from tenants.services import VerifiedRead, record_verified_census

logger = logging.getLogger(__name__)

SNAPSHOT_FIELDS = ("user_id", "upn", "user_type", "account_enabled", "per_user_state", "mfa_registered")


def census_from_verify(
    ctx: StepContext,
    what: str,
    read: dict[str, str],
    *,
    security_defaults: bool | None = None,
    mfa_policy_state: str | None = None,
) -> None:

    try:
        users = list(
            UserSnapshot.objects.filter(snapshot_id=ctx.state["snapshot_id"]).values(*SNAPSHOT_FIELDS)
        )
        record_verified_census(
            ctx.tenant,
            VerifiedRead(
                run_id=ctx.run.pk,
                what=what,
                states=read,
                users=users,
                security_defaults=security_defaults,
                mfa_policy_state=mfa_policy_state,
            ),
        )
    except Exception:  # noqa: BLE001 - the run is verified; the next census reads the tenant again
        logger.exception("could not store what %s of run %s read as the census", what, ctx.run.pk)
