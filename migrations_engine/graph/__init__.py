"""The only code that talks to Microsoft Graph and the Microsoft login service.

msal acquires app-only tokens per customer tenant; msgraph-sdk's request adapter (with its middleware)
carries every call, v1.0, beta and hand-built `$batch` alike. Nothing else in the project builds HTTP
requests to Microsoft.
"""

from migrations_engine.graph.client import BatchItem, BatchResult, GraphClient, GraphResponse
from migrations_engine.graph.config import GraphConfig
from migrations_engine.graph.errors import (
    ConsentMissing,
    GraphAuditMissing,
    GraphConfigError,
    GraphError,
    GraphHostNotAllowed,
    GraphUnavailable,
    TokenError,
)
from migrations_engine.graph.permissions import REQUIRED_ROLES, missing_roles

__all__ = [
    "REQUIRED_ROLES",
    "BatchItem",
    "BatchResult",
    "ConsentMissing",
    "GraphAuditMissing",
    "GraphClient",
    "GraphConfig",
    "GraphConfigError",
    "GraphError",
    "GraphHostNotAllowed",
    "GraphResponse",
    "GraphUnavailable",
    "TokenError",
    "missing_roles",
]
