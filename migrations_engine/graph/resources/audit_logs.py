"""The tenant's own logs: directory audits (who created a policy) and sign-ins (which clients users use).

https://learn.microsoft.com/graph/api/directoryaudit-list, https://learn.microsoft.com/graph/api/signin-list
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from migrations_engine.graph.client import GraphClient
from migrations_engine.graph.errors import GraphError

DIRECTORY_AUDITS = "/auditLogs/directoryAudits"
SIGN_INS = "/auditLogs/signIns"
MANAGED_POLICY_MANAGER = "Microsoft Managed Policy Manager"


async def microsoft_managed_ids(graph: GraphClient) -> set[str] | None:
    """Ids of the policies Microsoft's policy manager created (from the directory audit log); None when
    the log cannot be read (a permission missing)."""
    ids: set[str] = set()
    query = {"$filter": f"initiatedBy/app/displayName eq '{MANAGED_POLICY_MANAGER}' and category eq 'Policy'"}
    try:
        async for page in graph.iter_pages(DIRECTORY_AUDITS, query=query):
            for entry in page:
                ids.update(t["id"] for t in entry.get("targetResources") or [] if t.get("id"))
    except GraphError as exc:
        if exc.status in (400, 403, 404):
            return None
        raise
    return ids


def sign_in_pages(graph: GraphClient, client_app: str, since: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Sign-ins with one client app (`clientAppUsed`) since an ISO time, newest first, 999 a page.

    One query per client: the signIn resource page lists `eq` as the only operator on clientAppUsed
    (https://learn.microsoft.com/graph/api/resources/signin), so "every client but the modern ones"
    (`ne`) is refused by Graph."""
    quoted = client_app.replace("'", "''")
    return graph.iter_pages(
        SIGN_INS,
        query={"$filter": f"createdDateTime ge {since} and clientAppUsed eq '{quoted}'", "$top": 999},
    )
