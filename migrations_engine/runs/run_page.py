"""What a run's page and its progress endpoint show: the run (found through `get_run_for_user`, so
access scoping is never forgotten), each visible item's step timeline, the plan's changes in words, and
the buttons the user may press. `runs/admin.py` renders it; `runs/views.py` serves it as JSON."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Case, Count, F, IntegerField, Q, When, Window
from django.db.models.functions import RowNumber
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from migrations_engine.choices import ACTIVE_ITEM_STATUSES, ItemStatus, RunMode, RunStatus, UserOutcomeStatus
from migrations_engine.models import MigrationRun, RunItem, UserOutcome
from migrations_engine.runs import confirm as run_confirm
from migrations_engine.runs.pipeline import steps_for
from msp_console.words import ago
from staff import roles
from tenants.access import visible_tenants

# A running item whose heartbeat is older than this has probably lost its worker: offer "Resume stalled".
STALLED_AFTER = datetime.timedelta(minutes=5)
FAILED_USERS_SHOWN = 100
ITEMS_PER_PAGE = 25
PROGRESS_OVERLAP = datetime.timedelta(seconds=10)
FINISHED_RUN_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


def get_run_for_user(user, pk) -> MigrationRun:
    """The run if it touches a tenant `user` may see and they may view runs; 404 otherwise."""
    if not user.has_perm("migrations_engine.view_migrationrun"):
        raise PermissionDenied
    visible_items = RunItem.objects.filter(tenant__in=visible_tenants(user).values("pk"))
    run = (
        MigrationRun.objects.filter(pk=pk, pk__in=visible_items.values("run_id"))
        .select_related("started_by", "approved_by", "rollback_of")
        .first()
    )
    if run is None:
        raise Http404("No such run")
    return run


def may_act_on_all(user, tenant_ids: Iterable[int]) -> bool:
    """True when `user` may act on every one of these tenants."""
    wanted = set(tenant_ids)
    seen = set(visible_tenants(user).filter(pk__in=wanted).values_list("pk", flat=True))
    return wanted <= seen


def rollback_tenant_ids(run: MigrationRun) -> list[int]:
    """The tenants of the run whose snapshot is complete: those a rollback can put back."""
    return list(
        run.items.filter(snapshot__complete=True).values_list("tenant_id", flat=True).order_by("tenant_id")
    )


# A step's state as the page says it (the data-step-state attribute keeps the key).
STEP_STATE_WORDS = {
    "pending": "to do",
    "running": "running",
    "done": "done",
    "failed": "failed",
    "errored": "error",
    "would": "would change",
    "skipped": "skipped",
    "cancelled": "cancelled",
}

# A run's counters as people read them; any other key reads as its words ("users_total" -> "Users total").
COUNTER_LABELS = {
    "users_total": "Users",
    "per_user_enabled": "Per-user MFA enabled (before)",
    "per_user_enforced": "Per-user MFA enforced (before)",
    "per_user_disabled": "Per-user MFA disabled (before)",
    "migrate_done": "Per-user MFA turned off",
    "migrate_failed": "Per-user MFA could not be turned off",
    "bridge_done": "Covered with per-user MFA for the hand-off",
    "bridge_failed": "Could not be covered for the hand-off",
    "restore_done": "Restored from the snapshot",
    "restore_failed": "Could not be restored",
    "unbridge_done": "Hand-off cover removed",
    "unbridge_failed": "Hand-off cover could not be removed",
    "readiness_unregistered": "Users not MFA-registered",
    "readiness_legacy_clients": "Users on legacy clients",
    "warnings": "Warnings",
}


def counter_label(key: str, *, plan: bool = False) -> str:
    """A counter's name as people read it; a plan's "done" counters say what a migration *would* do."""
    label = COUNTER_LABELS.get(key, key.replace("_", " ").capitalize())
    if plan and key.endswith("_done"):
        return f"Would be: {label[0].lower()}{label[1:]}"
    return label


def step_titles(steps) -> dict[str, str]:
    """Every key a step writes under (its own and its plan keys) to the step's title."""
    titles = {}
    for step in steps:
        for key in (step.key, *step.plan_keys):
            titles.setdefault(key, step.title)
    return titles


def timeline(item: RunItem, steps, *, plan: bool = False) -> list[dict[str, str]]:
    """Every step of the item's pipeline: done, running, failed / errored (with the reason) or pending.
    In a plan, a step that would change the tenant is "would" (what it would change), never done, and
    verify is "skipped": a dry run changes nothing and so has nothing to verify."""
    log = {entry.get("key"): entry for entry in item.step_log or []}
    rows = []
    for number, step in enumerate(steps, start=1):
        entry = log.get(step.key) or {}
        state, message = entry.get("status", "pending"), entry.get("message", "")
        if plan and state == "done" and step.writes:
            names = (step.key, *step.plan_keys)
            changes = [plan_change_text(d) for d in item.plan_diff or [] if d.get("step") in names]
            state, message = "would", "would: " + ("; ".join(changes) or "nothing to change")
        elif plan and state == "done" and step.key == "verify":
            state, message = "skipped", "nothing to verify: a dry run changes nothing"
        rows.append(
            {
                "number": number,
                "key": step.key,
                "title": step.title,
                "state": state,
                "state_display": STEP_STATE_WORDS.get(state, state),
                "message": message,
            }
        )
    return rows


def plan_change_text(entry: dict[str, Any]) -> str:
    """One intended change of a plan, as people read it ("disable per-user MFA (104 users)")."""
    users = f" ({entry['users']} users)" if "users" in entry else ""
    change = entry.get("change", "")
    return f"{PLAN_VERBS.get(change, change)}{users}"


# The per-user writes' verbs, as a plan says them (the step logs say what was done).
PLAN_VERBS = {
    "per-user MFA disabled": "disable per-user MFA",
    "covered with per-user MFA for the hand-off": "cover with per-user MFA for the hand-off",
}


def _item_data(item: RunItem, steps, plan: bool = False) -> dict[str, Any]:
    return {
        "id": item.pk,
        "tenant_id": item.tenant_id,
        "tenant": item.tenant.primary_domain,
        "tenant_name": item.tenant.display_name,
        "status": item.status,
        "status_display": item.get_status_display(),
        "current_step": item.current_step,
        "steps_done": min(item.next_step_index, len(steps)),
        "steps_total": len(steps),
        "verdict": item.verdict,
        "failure_reason": item.failure_reason,
        "retryable": item.retryable,
        "counters": item.counters or {},
        "counter_labels": {key: counter_label(key, plan=plan) for key in item.counters or {}},
        "timeline": timeline(item, steps, plan=plan),
    }


# Items needing a look first: what failed, then what is moving, then what is done.
STATE_ORDER = (
    ItemStatus.FAILED,
    ItemStatus.ERRORED,
    ItemStatus.RUNNING,
    ItemStatus.QUEUED,
    ItemStatus.WAITING,
    ItemStatus.CANCELLED,
    ItemStatus.SUCCEEDED,
)
_RANK = Case(
    *[When(status=status, then=n) for n, status in enumerate(STATE_ORDER)],
    default=len(STATE_ORDER),
    output_field=IntegerField(),
)


def _visible(run: MigrationRun, user):
    return run.items.filter(tenant__in=visible_tenants(user).values("pk"))


def _visible_items(run: MigrationRun, user):
    return _visible(run, user).select_related("tenant").order_by(_RANK, "tenant__display_name", "pk")


def state_summary(run: MigrationRun, user) -> list[dict[str, Any]]:
    """How many visible items are in each state (one GROUP BY), in STATE_ORDER."""
    counts = dict(
        _visible(run, user)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    return [
        {"status": status, "label": ItemStatus(status).label, "count": counts[status]}
        for status in STATE_ORDER
        if counts.get(status)
    ]


def progress_payload(
    run: MigrationRun, user, since: datetime.datetime | None = None, params=None
) -> dict[str, Any]:
    """What the page's script needs to redraw: the run's status, the count of items in each state, and
    the progress of the items on the page `params` picks (the run page's own `page`, `state`, `q`);
    with `since` (the `now` of the previous answer) only those changed after it (less PROGRESS_OVERLAP:
    a worker's clock, or a transaction that committed late)."""
    steps = steps_for(run.mode)
    now = timezone.now()
    page, _ = _page_of_items(run, user, params or {})
    items = list(page.object_list)
    if since is not None:
        items = [item for item in items if item.changed_at >= since - PROGRESS_OVERLAP]
    rows = [_item_data(item, steps, run.mode == RunMode.PLAN) for item in items]
    summary = state_summary(run, user)
    return {
        "run": {
            "id": run.pk,
            "mode": run.mode,
            "status": run.status,
            "status_display": run.get_status_display(),
            "cancel_requested": run.cancel_requested,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "finished_words": ago(run.finished_at, never=""),
        },
        "active": any(row["status"] in ACTIVE_ITEM_STATUSES for row in summary),
        "summary": summary,
        "now": now.isoformat(),
        "changed_only": since is not None,
        "page": page.number,
        "pages": page.paginator.num_pages,
        "items": rows,
    }


def _page_of_items(run: MigrationRun, user, params) -> tuple[Any, dict[str, Any]]:
    """The visible items of this page (ITEMS_PER_PAGE, `?state=` and `?q=` applied) and what the page
    says about them."""
    items = _visible_items(run, user)
    state = params.get("state", "")
    if state not in ItemStatus.values:
        state = ""
    query = params.get("q", "").strip()
    if state:
        items = items.filter(status=state)
    if query:
        items = items.filter(
            Q(tenant__display_name__icontains=query) | Q(tenant__primary_domain__icontains=query)
        )
    page = Paginator(items, ITEMS_PER_PAGE).get_page(params.get("page"))
    return page, {"state": state, "q": query}


def _failed_users(item_ids: list[int]) -> tuple[dict[int, int], dict[int, list[UserOutcome]]]:
    """For these items: how many users failed, and the first FAILED_USERS_SHOWN of them. Two queries,
    however many items (a window numbers each item's failures)."""
    failed = UserOutcome.objects.filter(item__in=item_ids, status=UserOutcomeStatus.FAILED)
    counts = dict(
        failed.order_by().values_list("item_id").annotate(n=Count("id")).values_list("item_id", "n")
    )
    shown: dict[int, list[UserOutcome]] = {}
    if counts:
        numbered = failed.annotate(
            n=Window(RowNumber(), partition_by=F("item_id"), order_by=[F("purpose").asc(), F("upn").asc()])
        ).filter(n__lte=FAILED_USERS_SHOWN)
        for outcome in numbered.order_by("item_id", "n"):
            shown.setdefault(outcome.item_id, []).append(outcome)
    return counts, shown


def run_page_context(run: MigrationRun, user, params=None) -> dict[str, Any]:
    """Everything the run page renders, with which buttons apply for this user. `params` (the query
    string) picks the page of items, a state and a tenant search."""
    steps = steps_for(run.mode)
    titles = step_titles(steps)
    page, shown = _page_of_items(run, user, params or {})
    items = list(page.object_list)
    failed_counts, failed_users = _failed_users([i.pk for i in items])
    rows = []
    for item in items:
        data = _item_data(item, steps, run.mode == RunMode.PLAN)
        data["plan_diff"] = [
            {
                **entry,
                "step_title": titles.get(entry.get("step"), entry.get("step", "")),
                "sample_text": ", ".join(str(s) for s in entry.get("sample") or []),
            }
            for entry in item.plan_diff or []
        ]
        data["failed_users_count"] = failed_counts.get(item.pk, 0)
        data["failed_users"] = failed_users.get(item.pk, [])
        data["failed_users_more"] = max(0, data["failed_users_count"] - FAILED_USERS_SHOWN)
        data["readiness"] = (item.state or {}).get("readiness")
        data["warnings"] = (item.state or {}).get("warnings") or []
        rows.append(data)

    summary = state_summary(run, user)
    visible_count = sum(row["count"] for row in summary)
    every_item = list(run.items.values_list("status", "heartbeat_at", "tenant_id"))
    all_statuses = [(status, beat) for status, beat, _ in every_item]
    all_tenants = [tenant for _, _, tenant in every_item]
    acts = may_act_on_all(user, all_tenants)
    awaiting = run.status == RunStatus.AWAITING_APPROVAL
    stale_before = timezone.now() - STALLED_AFTER
    any_active = any(status in ACTIVE_ITEM_STATUSES for status, _ in all_statuses)
    is_starter = (
        run.started_by_id is not None and run.started_by_id == user.pk
    ) or run.actor == user.username
    rollback_ids = rollback_tenant_ids(run) if run.mode in (RunMode.PILOT, RunMode.FULL) else []
    steers = roles.may(user, roles.FOR_MODE[run.mode])  # cancel, retry, resume
    approves = roles.may(user, roles.APPROVE)
    return {
        "run": run,
        "items": rows,
        "page": page,
        "shown": shown,
        "summary": summary,
        "visible_count": visible_count,
        "paged": page.paginator.num_pages > 1 or bool(shown["state"] or shown["q"]),
        "steps": steps,
        "hidden_items": len(all_tenants) - visible_count,
        "active": any(row["status"] in ACTIVE_ITEM_STATUSES for row in summary),
        "progress_since": timezone.now().isoformat(),
        "awaiting_approval": awaiting,
        "is_starter": is_starter,
        "can_cancel": acts
        and any_active
        and not run.cancel_requested
        and (steers or (awaiting and approves)),
        "can_retry": acts
        and steers
        and not awaiting
        and any(status in (ItemStatus.FAILED, ItemStatus.ERRORED) for status, _ in all_statuses),
        "can_resume": acts
        and steers
        and any(
            status == ItemStatus.RUNNING and (beat is None or beat < stale_before)
            for status, beat in all_statuses
        ),
        "can_rollback": acts
        and roles.may(user, roles.ROLLBACK)
        and not any_active
        and bool(rollback_ids)
        and may_act_on_all(user, rollback_ids),
        "can_approve": acts and awaiting and not is_starter and approves,
        "can_finish_rollback": acts
        and run.mode == RunMode.ROLLBACK
        and steers
        and not any_active
        and any(status in run_confirm.RESUMABLE_ROLLBACK for status, _ in all_statuses),
        "rolled_back_by": _rollbacks_of(run),
        "progress_url": reverse("admin:migrations_engine_run_progress", args=[run.pk]),
        "audit_url": reverse("admin:migrations_engine_auditevent_changelist") + f"?run={run.pk}",
    }


def _rollbacks_of(run: MigrationRun) -> list[dict[str, Any]]:
    """The rollback runs of a pilot or full run, each with how many of its tenants it rolled back."""
    if run.mode not in (RunMode.PILOT, RunMode.FULL):
        return []
    rollbacks = (
        MigrationRun.objects.filter(rollback_of=run)
        .order_by("pk")
        .annotate(total=Count("items"), done=Count("items", filter=Q(items__status=ItemStatus.SUCCEEDED)))
    )
    return [{"run": r, "done": r.done, "total": r.total, "partly": r.done < r.total} for r in rollbacks]
