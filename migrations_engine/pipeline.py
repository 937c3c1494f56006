"""The ordered step registries. Keys are stable: `RunItem.next_step_index` points into these tuples."""

from __future__ import annotations

from migrations_engine.steps import migrate, rollback
from migrations_engine.steps.base import Step

FORWARD: tuple[Step, ...] = (
    migrate.VerifyConsent(),
    migrate.CheckLicence(),
    migrate.Census(),
    migrate.Snapshot(),
    migrate.GuardBreakGlass(),
    migrate.EnsurePolicy(),
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
    rollback.RestoreSecurityDefaults(),
    rollback.Unbridge(),
    rollback.VerifyRollback(),
)


def steps_for(mode: str) -> tuple[Step, ...]:
    """Plan, pilot and full share the forward pipeline; rollback has its own."""
    return ROLLBACK if mode == "rollback" else FORWARD


def step_keys(mode: str) -> list[str]:
    return [step.key for step in steps_for(mode)]
