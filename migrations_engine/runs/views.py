"""The run page's endpoints: its live progress (JSON) and its buttons (cancel, retry failed, resume
stalled, roll back, approve, finish a rollback).

Every view fetches its run through `run_page.get_run_for_user`: a run with no tenant the user may see is
a 404, and an action touching a tenant the user may not act on is a 403. Actions are POST only (405
otherwise), CSRF-checked by `site.admin_view`, and call one service each. `runs/urls.py` mounts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from migrations_engine.models import MigrationRun
from migrations_engine.runs import confirm as run_confirm
from migrations_engine.runs import services
from migrations_engine.runs.run_page import (
    get_run_for_user,
    may_act_on_all,
    progress_payload,
    rollback_tenant_ids,
)
from msp_console.words import counted
from staff.reauth import require_fresh


def _require_all(user, tenant_ids: Iterable[int]) -> None:
    if not may_act_on_all(user, tenant_ids):
        raise PermissionDenied("This action touches a tenant you may not act on.")


@require_GET
def run_progress(request: HttpRequest, pk: int) -> JsonResponse:
    """`runs/<pk>/progress.json`: the run's status, its items by state and the step timelines of the
    items on one page of the run page (`page`, `state`, `q` as there); `?since=<the previous answer's
    now>` sends only those changed after it."""
    run = get_run_for_user(request.user, pk)
    since = None
    if raw := request.GET.get("since"):
        since = parse_datetime(raw.replace(" ", "+"))  # a "+" left unencoded reads as a space
        if since is None or since.tzinfo is None:
            return JsonResponse({"error": "since must be an ISO 8601 time with its UTC offset"}, status=400)
    return JsonResponse(progress_payload(run, request.user, since, request.GET))


# --- the buttons -----------------------------------------------------------------------------------


def _back(run: MigrationRun) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("admin:migrations_engine_migrationrun_change", args=[run.pk]))


def _run_action(
    request: HttpRequest, pk: int, tenants: Callable[[MigrationRun], Iterable[int]], act: Callable
) -> HttpResponse:
    run = get_run_for_user(request.user, pk)
    _require_all(request.user, tenants(run))
    try:
        return act(run) or _back(run)
    except (ValidationError, services.RunConflict) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", None) or [str(exc)]))
        return _back(run)


def _all_tenants(run: MigrationRun) -> list[int]:
    return list(run.items.values_list("tenant_id", flat=True))


@dataclass(frozen=True)
class Button:
    """A run page button that calls one run service on the run (every tenant of it must be the user's)."""

    service: str  # the name of the function in runs.services, called (run, actor=user)
    done: str  # the message after it, with {run} and {count} (what the service returned)
    fresh: str = ""  # a re-authentication is asked for first, with this reason ({pk})


BUTTONS = {
    "cancel": Button("cancel_run", "Cancel requested for run {run}: {tenants} will stop."),
    "retry": Button("retry_failed", "Failed tenants of run {run} queued again: {count}."),
    "resume": Button("resume_stalled", "Stalled tenants of run {run} queued again: {count}."),
    "resume_rollback": Button("resume_rollback", "Rollback run {run}: {tenants} queued to finish."),
    "approve": Button("approve_run", "Run {run} approved and queued.", fresh="approve run {pk}"),
}


def _asks_first(request: HttpRequest, site, pk: int, action: str) -> HttpResponse | None:
    """The button's confirmation page, unless this POST is that page's "Yes" (runs/confirm.py)."""
    if run_confirm.confirmed(request):
        return None
    run = get_run_for_user(request.user, pk)
    _require_all(request.user, _all_tenants(run))  # no page about a run the person may not act on
    return run_confirm.ask(request, site, run, action)


@require_POST
def run_button(request: HttpRequest, pk: int, *, site, action: str) -> HttpResponse:
    """Cancel (each tenant stops at its next step), retry the failed, resume the stalled, finish a
    rollback from where each tenant stopped, or approve (a second staff member): after its confirmation
    page, and for approval a fresh sign-in."""
    button = BUTTONS[action]
    if (page := _asks_first(request, site, pk, action)) is not None:
        return page
    if button.fresh and (ask := require_fresh(request, button.fresh.format(pk=pk), site)) is not None:
        return ask

    def act(run):
        count = getattr(services, button.service)(run, actor=request.user)
        messages.success(
            request, button.done.format(run=run.pk, count=count, tenants=counted(count, "tenant"))
        )

    return _run_action(request, pk, _all_tenants, act)


@require_POST
def roll_back(request: HttpRequest, pk: int, *, site) -> HttpResponse:
    """Start a rollback run for the run's tenants that have a complete snapshot."""
    if run_confirm.confirmed(request) is False:
        run = get_run_for_user(request.user, pk)
        _require_all(request.user, rollback_tenant_ids(run))
        tenant_ids = rollback_tenant_ids(run)
        return run_confirm.ask(request, site, run, "rollback", rollback_tenant_ids=tenant_ids)
    if (ask := require_fresh(request, f"roll back run {pk}", site)) is not None:
        return ask

    def act(run):
        rollback = services.start_rollback(run, actor=request.user)
        messages.success(request, f"Rollback run {rollback.pk} started for run {run.pk}.")
        return _back(rollback)

    return _run_action(request, pk, rollback_tenant_ids, act)
