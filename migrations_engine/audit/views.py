"""The audit log's page that is not about one row: verifying every chain the user may see."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from migrations_engine.audit.writer import verify_chain
from migrations_engine.models import AuditChainHead, AuditEvent
from tenants.access import visible_tenants


@require_GET
def verify_chains(request: HttpRequest, *, site) -> TemplateResponse:
    """Recompute each audit chain the user may see and show OK or its first broken row.

    Staff see their tenants' chains; the fleet chain (rows without a tenant) only superusers.
    """
    user = request.user
    if not user.has_perm("migrations_engine.view_auditevent"):
        raise PermissionDenied
    tenants = {str(t.tenant_id): t for t in visible_tenants(user)}
    heads = AuditChainHead.objects.filter(chain__in=list(tenants)).order_by("chain")
    if user.is_superuser:
        heads = AuditChainHead.objects.order_by("chain")
    rows = []
    for head in heads:
        problems = verify_chain(head.chain)
        problem = problems[0] if problems else None
        rows.append(
            {
                "chain": head.chain,
                "tenant": tenants.get(head.chain),
                "rows": head.seq,
                "problem": problem,
                "row_url": (
                    reverse("admin:migrations_engine_auditevent_change", args=[problem.event_id])
                    if problem
                    and problem.event_id
                    and AuditEvent.objects.filter(pk=problem.event_id).exists()
                    else ""
                ),
            }
        )
    context = {
        **site.each_context(request),
        "title": "Verify audit chains",
        "rows": rows,
        "broken": sum(1 for r in rows if r["problem"]),
    }
    return TemplateResponse(request, "migrations_engine/verify_chains.html", context)
