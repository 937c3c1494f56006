"""Re-authentication before the riskiest actions (approve, full run, rollback, credential changes): when
the last sign-in or confirmation is older than STAFF_REAUTH_MINUTES, the action's POST is answered with
a page asking for the password and a code again, which re-posts the same form once they check out."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib.auth import authenticate
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from django_otp import user_has_device

from migrations_engine.audit.writer import record_staff_action
from staff.models import EntraIdentity
from staff.second_factor_views import verify_code
from staff.sessions import is_fresh, mark_authenticated

_OWN_FIELDS = ("csrfmiddlewaretoken", "reauth_password", "reauth_code")


def _back(request) -> str:
    """The page the action was taken from (its path), to return to after confirming at Entra ID."""
    referer = urlsplit(request.META.get("HTTP_REFERER", ""))
    same_site = referer.netloc == request.get_host()
    return (referer.path + (f"?{referer.query}" if referer.query else "")) if same_site else "/"


def require_fresh(request, what: str, site=None):
    """None when the person proved who they are recently (or does so in this POST); otherwise the page
    that asks them to, which re-posts this request's form. `what` names the action in its words."""
    if is_fresh(request):
        return None
    user = request.user
    error = ""
    if "reauth_password" in request.POST:
        ok = authenticate(request, username=user.get_username(), password=request.POST["reauth_password"])
        if (
            ok is not None
            and ok.pk == user.pk
            and (not user_has_device(user) or verify_code(user, request.POST.get("reauth_code", "")))
        ):
            mark_authenticated(request)
            record_staff_action(actor=user.username, action="staff.reauthenticated", detail={"for": what})
            return None
        error = "The password or the code is wrong."
        record_staff_action(actor=user.username, action="staff.reauthentication_failed", detail={"for": what})
    fields = [
        (name, value) for name, values in request.POST.lists() if name not in _OWN_FIELDS for value in values
    ]
    entra_query = urlencode({"reauth": 1, "next": _back(request)})
    context = {
        **(site.each_context(request) if site else {}),
        "title": "Confirm it is you",
        "what": what,
        "fields": fields,
        "action_url": request.get_full_path(),
        "error": error,
        "asks_code": user_has_device(user),
        # Staff who sign in through Entra ID have no console password: they confirm there.
        "entra": EntraIdentity.objects.filter(user=user).exists(),
        "entra_url": f"{reverse('admin:staff_entra_login')}?{entra_query}",
    }
    return TemplateResponse(request, "staff/reauth.html", context, status=403 if error else 200)
