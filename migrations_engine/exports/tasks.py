"""RQ entry point of scheduled exports (schedules.AUDIT_EXPORTS_ID)."""

from __future__ import annotations

from migrations_engine.exports.services import ExportError, export_due


def export_due_job() -> str:
    """RQ job: write every due export. Fails (so RQ shows it) when a schedule failed; the others were
    written anyway."""
    report = export_due(actor="scheduler")
    if report.errors:
        raise ExportError(report.summary())
    return report.summary()
