"""Models of the migrations_engine app, one module per concern."""

from migrations_engine.models.audit import AuditChainHead, AuditEvent
from migrations_engine.models.drift import DriftCheck, DriftFinding
from migrations_engine.models.exports import ExportFile, ExportSchedule
from migrations_engine.models.runs import MigrationRun, RunItem, TenantSnapshot, UserOutcome, UserSnapshot
from migrations_engine.models.waves import Wave, WaveSlot, WaveTenant

__all__ = [
    "AuditChainHead",
    "AuditEvent",
    "DriftCheck",
    "DriftFinding",
    "ExportFile",
    "ExportSchedule",
    "MigrationRun",
    "RunItem",
    "TenantSnapshot",
    "UserOutcome",
    "UserSnapshot",
    "Wave",
    "WaveSlot",
    "WaveTenant",
]
