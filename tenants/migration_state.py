"""What a tenant is, migration-wise, decided from plain facts: its real runs (pilot, full, rollback) that
started, oldest first; whether drift is open; and, while no run has touched it, whether it is ready.

A pure function, so the data migration that fills the field for existing tenants decides exactly as
the running console does (`migrations_engine/runs/tenant_state.py` gathers the facts and stores the answer).
Plans are not facts here: a dry run never changes what a tenant is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tenants.choices import CensusStatus, ConsentStatus, LicenceTier, MigrationState

ROLLBACK = "rollback"
ACTIVE = ("queued", "running", "waiting")


@dataclass(frozen=True)
class RealRun:
    """One of the tenant's pilot, full or rollback run items that started."""

    run_id: int
    mode: str  # pilot | full | rollback
    status: str  # an ItemStatus value
    wrote: bool = False  # at least one Graph write of it may have reached the tenant
    reason: str = ""  # its failure reason, when it ended without succeeding


@dataclass(frozen=True)
class Readiness:
    """What the last census and the tenant's settings say about starting a migration."""

    census_status: str = CensusStatus.NEVER
    census_message: str = ""
    licence: str = LicenceTier.UNKNOWN
    consent_status: str | None = None
    missing_roles: list[str] = field(default_factory=list)
    break_glass: bool = False


@dataclass(frozen=True)
class Decision:
    state: str
    reason: str = ""
    run_id: int | None = None


def blockers(facts: Readiness) -> list[str]:
    """Why a migration of this tenant cannot succeed now, in words (empty: nothing blocks it)."""
    reasons = []
    no_consent = facts.consent_status in (None, ConsentStatus.PENDING)
    if no_consent or facts.census_status == CensusStatus.NO_CONSENT:
        reasons.append("Admin consent not given")
    elif facts.missing_roles:
        reasons.append(f"Consent is missing permissions: {', '.join(sorted(facts.missing_roles))}")
    if facts.licence == LicenceTier.FREE or facts.census_status == CensusStatus.FREE:
        reasons.append("Entra ID Free: Conditional Access needs Entra ID P1 or P2")
    if facts.census_status == CensusStatus.ERROR:
        reasons.append(f"Census failed: {facts.census_message or 'see the tenant page'}")
    if not facts.break_glass:
        reasons.append("No break-glass accounts configured")
    return reasons


def decide(history: list[RealRun], readiness: Readiness, drift_open: bool) -> Decision:
    """The tenant's state from its started real runs (oldest first), its readiness and open drift."""
    for index in range(len(history) - 1, -1, -1):
        item = history[index]
        rollback = item.mode == ROLLBACK
        if item.status in ACTIVE:
            state = MigrationState.ROLLING_BACK if rollback else MigrationState.MIGRATING
            return Decision(state, f"Run {item.run_id} is under way", item.run_id)
        if item.status == "succeeded":
            if rollback:
                return Decision(MigrationState.ROLLED_BACK, f"Rolled back by run {item.run_id}", item.run_id)
            if drift_open:
                reason = f"Drift found since run {item.run_id} verified it: see Drift findings"
                return Decision(MigrationState.MIGRATED_DRIFT, reason, item.run_id)
            state = MigrationState.PILOT_VERIFIED if item.mode == "pilot" else MigrationState.MIGRATED
            return Decision(state, f"Verified by run {item.run_id}", item.run_id)
        if item.wrote:
            if rollback:
                reason = f"Rollback run {item.run_id} stopped part-way ({item.status}): {item.reason}"
                return Decision(MigrationState.PARTLY_ROLLED_BACK, reason.rstrip(": "), item.run_id)
            reason = f"Run {item.run_id} stopped part-way ({item.status}): {item.reason}"
            return Decision(MigrationState.NEEDS_ATTENTION, reason.rstrip(": "), item.run_id)
        # It ended having changed nothing: the tenant is what it was before, and the reason says so.
        before = decide(history[:index], readiness, drift_open)
        note = f"Run {item.run_id} {item.status} before changing anything: {item.reason}".rstrip(": ")
        return Decision(before.state, "; ".join(r for r in (before.reason, note) if r), before.run_id)
    if readiness.census_status == CensusStatus.NEVER:
        return Decision(MigrationState.NOT_STARTED, "No census yet")
    reasons = blockers(readiness)
    if reasons:
        return Decision(MigrationState.BLOCKED, "; ".join(reasons))
    return Decision(MigrationState.READY)
