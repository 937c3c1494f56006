"""The ordered step registries. Keys are stable: `RunItem.next_step_index` points into these tuples."""

from __future__ import annotations

from migrations_engine.steps import (
    break_glass,
    bridge,
    census,
    consent,
    cut_over,
    licence,
    per_user,
    policy,
    readiness,
    rollback,
    verify,
)
from migrations_engine.steps.base import Step
from migrations_engine.steps.optional import location, session

FORWARD: tuple[Step, ...] = (
    consent.VerifyConsent(),
    licence.CheckLicence(),
    census.Census(),
    census.Snapshot(),
    break_glass.GuardBreakGlass(),
    readiness.Readiness(),
    policy.EnsurePolicy(),
    location.NamedLocation(),  # optional (run option named_location)
    session.SignInFrequency(),  # optional (run option sign_in_frequency)
    bridge.BridgeSecurityDefaults(),
    cut_over.CutOver(),
    per_user.DisablePerUser(),
    verify.Verify(),
)

ROLLBACK: tuple[Step, ...] = (
    consent.VerifyConsent(),
    rollback.LoadSnapshot(),
    rollback.RestorePerUser(),
    rollback.RollbackBridge(),
    rollback.RestorePolicy(),
    session.RestoreSessionPolicy(),
    location.RestoreNamedLocation(),
    rollback.RestoreSecurityDefaults(),
    rollback.Unbridge(),
    rollback.VerifyRollback(),
)


def steps_for(mode: str) -> tuple[Step, ...]:
    """Plan, pilot and full share the forward pipeline; rollback has its own."""
    return ROLLBACK if mode == "rollback" else FORWARD


def step_keys(mode: str) -> list[str]:
    return [step.key for step in steps_for(mode)]
