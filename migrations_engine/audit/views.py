"""The audit log's page that is not about one row: the hash chains the user may see, with each chain's
last check (stored by `verification.check_chain`) and a button that queues fresh checks."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Case, Count, F, IntegerField, Min, Q, Sum, When
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from redis.exceptions import RedisError

from migrations_engine import queueing
from migrations_engine.audit.models import FLEET_CHAIN
from migrations_engine.audit.verification import request_checks
from migrations_engine.audit.writer import record_staff_action
from migrations_engine.models import AuditChainHead, AuditEvent, ChainVerification
from msp_console.words import counted
from tenants.access import visible_tenants
from tenants.models import CustomerTenant

PER_PAGE = 100
BROKEN = Q(verification__problem_reason__gt="")
UNCHECKED = Q(verification__isnull=True) | Q(verification__checked_at__isnull=True)
BEHIND = Q(seq__gt=F("verification__verified_seq"))
QUEUED = Q(verification__requested_at__isnull=False) & (
    Q(verification__checked_at__isnull=True) | Q(verification__requested_at__gt=F("verification__checked_at"))
)


def _visible_heads(user):
    heads = AuditChainHead.objects.all()
    if user.is_superuser:
        return heads
    chains = [str(t) for t in visible_tenants(user).values_list("tenant_id", flat=True)]
    return heads.filter(chain__in=chains)


def _summary(heads) -> dict:
    return heads.aggregate(
        chains=Count("pk"),
        rows=Sum("seq"),
        broken=Count("pk", filter=BROKEN),
        unchecked=Count("pk", filter=UNCHECKED),
        behind=Count("pk", filter=BEHIND & ~BROKEN & ~UNCHECKED),
        oldest=Min("verification__checked_at"),
        queued=Count("pk", filter=QUEUED),
    )


def _ordered(heads):
    """Broken chains first, then never checked, then with rows since their check, then the rest."""
    rank = Case(
        When(BROKEN, then=0),
        When(UNCHECKED, then=1),
        When(BEHIND, then=2),
        default=3,
        output_field=IntegerField(),
    )
    return heads.select_related("verification").annotate(rank=rank).order_by("rank", "chain")


@require_http_methods(["GET", "POST"])
def verify_chains(request: HttpRequest, *, site) -> TemplateResponse | HttpResponseRedirect:
    """GET: each chain the user may see with its last check (result, age, rows since). POST: queue a
    check of each of them (`full` re-hashes from row 1), then back here.

    Staff see their tenants' chains; the fleet chain (rows without a tenant) only superusers.
    """
    user = request.user
    if not user.has_perm("migrations_engine.view_auditevent"):
        raise PermissionDenied
    heads = _visible_heads(user)
    if request.method == "POST":
        return _queue_checks(request, heads, full=request.POST.get("full") == "1")
    page = Paginator(_ordered(heads), PER_PAGE).get_page(request.GET.get("page"))
    names = [head.chain for head in page.object_list]
    tenant_chains = [name for name in names if name != FLEET_CHAIN]
    tenants = {str(t.tenant_id): t for t in CustomerTenant.objects.filter(tenant_id__in=tenant_chains)}
    rows = [_row(head, tenants.get(head.chain)) for head in page.object_list]
    context = {
        **site.each_context(request),
        "title": "Verify audit chains",
        "rows": rows,
        "page": page,
        "summary": _summary(heads),
        "verify_url": reverse("admin:migrations_engine_audit_verify"),
    }
    return TemplateResponse(request, "migrations_engine/verify_chains.html", context)


def _row(head: AuditChainHead, tenant) -> dict:
    result = getattr(head, "verification", None)
    checked = result is not None and result.checked_at is not None
    problem = bool(result and result.problem_reason)
    return {
        "chain": head.chain,
        "tenant": tenant,
        "rows": head.seq,
        "result": result if checked else None,
        "queued": bool(result and result.queued),
        "problem": problem,
        "behind": head.seq - result.verified_seq if checked and not problem else 0,
        "row_url": (
            reverse("admin:migrations_engine_auditevent_change", args=[result.problem_event_id])
            if problem and AuditEvent.objects.filter(pk=result.problem_event_id).exists()
            else ""
        ),
    }


def _queue_checks(request: HttpRequest, heads, *, full: bool) -> HttpResponseRedirect:
    pks = request_checks(heads.only("pk"))
    try:
        queued = queueing.enqueue_each(
            queueing.AUDIT_VERIFY_TASK,
            [(pk, full) for pk in pks],
            job_id="audit-verify-{}",
            timeout=queueing.AUDIT_VERIFY_JOB_TIMEOUT,
        )
    except RedisError:
        ChainVerification.objects.filter(head_id__in=pks).update(requested_at=None)  # nothing is queued
        messages.error(
            request, "The job queue (Redis) did not answer: no check was queued. Try again shortly."
        )
        return HttpResponseRedirect(reverse("admin:migrations_engine_audit_verify"))
    record_staff_action(
        actor=request.user.username,
        action="audit.verify_requested",
        detail={"chains": queued, "from_row_1": full},
    )
    how = "from row 1" if full else "from each chain's last good check"
    messages.info(
        request, f"{counted(queued, 'chain check')} queued ({how}); results appear here as they finish."
    )
    return HttpResponseRedirect(reverse("admin:migrations_engine_audit_verify"))
