"""Models of the migrations_engine app, one module per concern."""

from migrations_engine.audit.models import AuditChainHead, AuditEvent, ChainVerification
from migrations_engine.drift.models import DriftCheck, DriftFinding
from migrations_engine.exports.models import ExportFile, ExportSchedule
from migrations_engine.runs.models import MigrationRun, RunItem, TenantSnapshot, UserOutcome, UserSnapshot
from migrations_engine.waves.models import Wave, WaveSlot, WaveTenant

__all__ = [
    "AuditChainHead",
    "AuditEvent",
    "ChainVerification",
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
