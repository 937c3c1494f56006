"""The ordered step registries. Keys are stable: `RunItem.next_step_index` points into these tuples."""

from __future__ import annotations

from migrations_engine.steps import locations, migrate, readiness, rollback, session
from migrations_engine.steps.base import Step

FORWARD: tuple[Step, ...] = (
    migrate.VerifyConsent(),
    migrate.CheckLicence(),
    migrate.Census(),
    migrate.Snapshot(),
    migrate.GuardBreakGlass(),
    readiness.Readiness(),
    migrate.EnsurePolicy(),
    locations.NamedLocation(),  # optional (run option named_location)
    session.SignInFrequency(),  # optional (run option sign_in_frequency)
    migrate.BridgeSecurityDefaults(),
    migrate.CutOver(),
    migrate.DisablePerUser(),
    migrate.Verify(),
)

ROLLBACK: tuple[Step, ...] = (
    migrate.VerifyConsent(),
    rollback.LoadSnapshot(),
    rollback.RestorePerUser(),
    rollback.RollbackBridge(),
    rollback.RestorePolicy(),
    session.RestoreSessionPolicy(),
    locations.RestoreNamedLocation(),
    rollback.RestoreSecurityDefaults(),
    rollback.Unbridge(),
    rollback.VerifyRollback(),
)


def steps_for(mode: str) -> tuple[Step, ...]:
    """Plan, pilot and full share the forward pipeline; rollback has its own."""
    return ROLLBACK if mode == "rollback" else FORWARD


def step_keys(mode: str) -> list[str]:
    return [step.key for step in steps_for(mode)]
