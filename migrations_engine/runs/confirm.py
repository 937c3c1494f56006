"""What a run page's button will do, said before it does it: each button's POST first answers with a page
naming the run, how many tenants and users it touches and what happens to them; only that page's
"Yes" (confirm=yes, same POST, CSRF-checked) acts."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Sum
from django.template.response import TemplateResponse
from django.urls import reverse

from migrations_engine.choices import ACTIVE_ITEM_STATUSES, ItemStatus, RunMode
from migrations_engine.models import MigrationRun
from tenants.models import CustomerTenant

CONFIRM_FIELD = "confirm"
RESUMABLE_ROLLBACK = (ItemStatus.CANCELLED, ItemStatus.FAILED, ItemStatus.ERRORED)


@dataclass
class Question:
    """The confirmation page of one button."""

    title: str
    what: str  # one sentence: what happens, with the counts
    button: str
    tenants: list[str] = field(default_factory=list)
    warning: str = ""
    alternative: str = ""  # the safer choice, offered as the way back


def _tenants_and_users(run: MigrationRun, statuses=None, tenant_ids=None) -> tuple[list[str], int]:
    items = run.items.all()
    if statuses is not None:
        items = items.filter(status__in=list(statuses))
    if tenant_ids is not None:
        items = items.filter(tenant_id__in=list(tenant_ids))
    tenants = CustomerTenant.objects.filter(pk__in=items.values("tenant_id")).order_by("display_name")
    users = tenants.aggregate(n=Sum("users_total"))["n"] or 0
    return [f"{t.display_name} ({t.primary_domain})" for t in tenants], users


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def question(run: MigrationRun, action: str, *, rollback_tenant_ids=None) -> Question:
    """The page's words for `action` on `run`."""
    if action == "approve":
        names, users = _tenants_and_users(run)
        return Question(
            f"Approve full run {run.pk}?",
            f"It starts at once for {_count(len(names), 'tenant')} ({_count(users, 'user')}): each gets the "
            "Conditional Access policy and, once it is enforced, per-user MFA turned off.",
            "approve and start it",
            names,
        )
    if action == "cancel":
        names, users = _tenants_and_users(run, statuses=ACTIVE_ITEM_STATUSES)
        q = Question(
            f"Cancel run {run.pk}?",
            f"{_count(len(names), 'tenant')} still to finish ({_count(users, 'user')}) stop at their next "
            "step; tenants already finished stay as they are.",
            "cancel the run",
            names,
        )
        if run.mode == RunMode.ROLLBACK:
            q.warning = (
                "This is a rollback. Cancelling it leaves tenants part-way: some users with per-user MFA "
                "restored while the policy is still on, and tenants not reached still migrated. Letting "
                "it finish is almost always better."
            )
            q.alternative = "Let the rollback finish"
        return q
    if action == "retry":
        names, users = _tenants_and_users(run, statuses=(ItemStatus.FAILED, ItemStatus.ERRORED))
        return Question(
            f"Retry the failed tenants of run {run.pk}?",
            f"{_count(len(names), 'tenant')} ({_count(users, 'user')}) are queued again and resume at the "
            "step they stopped at (each step reads Graph first, so nothing is done twice).",
            "retry them",
            names,
        )
    if action == "resume":
        names, users = _tenants_and_users(run, statuses=(ItemStatus.RUNNING,))
        return Question(
            f"Resume the stalled tenants of run {run.pk}?",
            f"{_count(len(names), 'tenant')} whose worker stopped answering are queued again and resume at "
            "their checkpoint.",
            "resume them",
            names,
        )
    if action == "rollback":
        names, users = _tenants_and_users(run, tenant_ids=rollback_tenant_ids)
        return Question(
            f"Roll back run {run.pk}?",
            f"{_count(len(names), 'tenant')} ({_count(users, 'user')}) go back to the snapshot taken before "
            "the migration: per-user MFA restored user by user, the policy turned back, security defaults "
            "as they were.",
            "roll back",
            names,
            warning="Users lose Conditional Access MFA and get per-user MFA back, as before the migration.",
        )
    if action == "resume_rollback":
        names, users = _tenants_and_users(run, statuses=RESUMABLE_ROLLBACK)
        return Question(
            f"Finish rollback run {run.pk}?",
            f"{_count(len(names), 'tenant')} left part-way or not reached ({_count(users, 'user')}) are "
            "rolled back from where they stopped, to the snapshot.",
            "finish the rollback",
            names,
        )
    raise ValueError(f"no confirmation for {action!r}")


def confirmed(request) -> bool:
    return request.POST.get(CONFIRM_FIELD) == "yes"


def confirmation_page(request, site, q: Question, *, back_url: str, crumbs: list[tuple[str, str]]):
    """The page (templates/admin/confirm_action.html) that re-posts this POST's own fields with Yes."""
    fields = [
        (name, value)
        for name, values in request.POST.lists()
        if name not in ("csrfmiddlewaretoken", CONFIRM_FIELD)
        for value in values
    ]
    context = {
        **site.each_context(request),
        "title": q.title,
        "question": q,
        "fields": fields,
        "action_url": request.get_full_path(),
        "back_url": back_url,
        "crumbs": crumbs,
    }
    return TemplateResponse(request, "admin/confirm_action.html", context)


def ask(request, site, run: MigrationRun, action: str, **kwargs) -> TemplateResponse:
    back = reverse("admin:migrations_engine_migrationrun_change", args=[run.pk])
    runs = reverse("admin:migrations_engine_migrationrun_changelist")
    return confirmation_page(
        request,
        site,
        question(run, action, **kwargs),
        back_url=back,
        crumbs=[("Migration runs", runs), (f"Run {run.pk}", back)],
    )
