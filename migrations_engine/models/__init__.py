"""Models of the migrations_engine app, one module per concern."""

from migrations_engine.models.audit import AuditChainHead, AuditEvent
from migrations_engine.models.runs import MigrationRun, RunItem, TenantSnapshot, UserOutcome, UserSnapshot

__all__ = [
    "AuditChainHead",
    "AuditEvent",
    "MigrationRun",
    "RunItem",
    "TenantSnapshot",
    "UserOutcome",
    "UserSnapshot",
]
