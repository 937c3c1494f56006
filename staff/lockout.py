"""Lockout of repeated failed sign-ins (django-axes): the client's address, the page a locked-out person
sees (with when the lockout ends), and the audit rows of lockouts and unlocks."""

from __future__ import annotations

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max, Q, Sum
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from migrations_engine.audit.writer import record_staff_action


def client_ip(request) -> str:
    """REMOTE_ADDR; behind the TLS proxy (BEHIND_TLS_PROXY), the address that proxy saw, which it appends
    last to X-Forwarded-For (anything before it came from the client and may be forged)."""
    if settings.BEHIND_TLS_PROXY:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if forwarded and forwarded[-1]:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR", "")


def lockout_ends(username: str, ip_address: str):
    """When the lockout of this username or address ends at the latest: its last failure plus the
    cool-off. django-axes keeps one record per username, address and browser and adds their failures
    up, so every record of the username or the address counts, not only one at the limit."""
    last = AccessAttempt.objects.filter(Q(username=username) | Q(ip_address=ip_address)).aggregate(
        last=Max("attempt_time")
    )["last"]
    return (last or timezone.now()) + get_cool_off()


def is_locked(username: str, ip_address: str) -> bool:
    """Whether the failures of this username, or from this address, within the cool-off add up to the
    limit (django-axes' rule, over all its records)."""
    recent = AccessAttempt.objects.filter(attempt_time__gte=timezone.now() - get_cool_off())
    limit = settings.AXES_FAILURE_LIMIT
    by_user = recent.filter(username=username).aggregate(n=Sum("failures_since_start"))["n"] or 0
    by_address = recent.filter(ip_address=ip_address).aggregate(n=Sum("failures_since_start"))["n"] or 0
    return by_user >= limit or by_address >= limit


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """The sign-in page's answer while locked out: 429, saying until when, and who can unlock earlier."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    ends = lockout_ends(username, client_ip(request))
    context = {
        "title": "Sign-in locked",
        "site_header": "MSP MFA console",
        "ends": ends,
        "minutes": settings.STAFF_LOCKOUT_MINUTES,
        "failures": settings.AXES_FAILURE_LIMIT,
    }
    # Rendered now: django-axes answers from its middleware, after template responses were rendered.
    return render(request, "staff/locked_out.html", context, status=429)


def on_locked_out(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    """Audit row: who was locked out, from where, until when (django-axes' `user_locked_out` signal)."""
    record_staff_action(
        actor="console:lockout",
        action="staff.locked_out",
        detail={
            "username": username or "",
            "ip_address": ip_address or "",
            "until": lockout_ends(username or "", ip_address or "").isoformat(),
        },
    )


def unlock(attempts, *, actor) -> int:
    """Remove these failure records (ending their lockouts) and audit each username/address unlocked."""
    unlocked = sorted(set(attempts.values_list("username", "ip_address")))
    count, _ = attempts.delete()
    for username, ip_address in unlocked:
        record_staff_action(
            actor=actor,
            action="staff.unlocked",
            detail={"username": username or "", "ip_address": ip_address or ""},
        )
    return count
