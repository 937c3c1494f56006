"""/account/entra/login/ sends the browser to Entra ID; /account/entra/callback/ takes the answer, signs
the staff member in (or re-authenticates them, `?reauth=1`) or says why not. Both are audited."""

from __future__ import annotations

import logging

from django.contrib.auth import login, logout
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from migrations_engine.audit.writer import record_staff_action
from staff.entra.config import entra_sign_in
from staff.entra.flow import SignInRefused, finish, start
from staff.entra.mapping import sign_in_user
from staff.models import EntraIdentity
from staff.second_factor import mark_verified_by_entra
from staff.sessions import mark_authenticated
from staff.sign_ins import SIGN_IN_DETAIL

log = logging.getLogger(__name__)
# Refusals of an answer this browser's sign-in did not ask for (none under way, or another's state).
UNSOLICITED = {"no_flow", "state"}


def _safe_next(request, target: str) -> str:
    ok = url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure())
    return target if target and ok and target.startswith("/") else "/"


def _config_or_404():
    config = entra_sign_in()
    if config is None:
        raise Http404("Entra ID sign-in is not set up on this console.")
    return config


@never_cache
@require_GET
def entra_login(request):
    """Start a sign-in (or, with ?reauth=1 for a signed-in person, a fresh one with the password again)."""
    config = _config_or_404()
    reauth = request.GET.get("reauth") == "1" and request.user.is_authenticated
    hint = ""
    if reauth:
        identity = EntraIdentity.objects.filter(user=request.user).first()
        hint = identity.upn if identity else ""
    try:
        url = start(
            request.session,
            config,
            redirect_uri=config.redirect_uri
            or request.build_absolute_uri(reverse("admin:staff_entra_callback")),
            next_url=_safe_next(request, request.GET.get("next", "")),
            reauth=reauth,
            hint=hint,
        )
    except SignInRefused as refused:
        return _refused(request, refused)
    return HttpResponseRedirect(url)


@never_cache
@require_GET
def entra_callback(request):
    """Entra ID's answer: a code (redeemed by msal and checked) or an error."""
    config = _config_or_404()
    try:
        proof = finish(request.session, config, dict(request.GET.items()))
        if proof.reauth:
            return _reauthenticated(request, proof)
        outcome = sign_in_user(proof)
    except SignInRefused as refused:
        return _refused(request, refused)
    if request.user.is_authenticated and request.user.pk != outcome.user.pk:
        logout(request)
    setattr(
        request,
        SIGN_IN_DETAIL,
        {
            "method": "entra",
            "upn": proof.upn,
            "object_id": proof.object_id,
            "mfa": list(proof.mfa),
            "created": outcome.created,
            "groups": list(outcome.groups),
            "groups_added": list(outcome.added),
            "groups_removed": list(outcome.removed),
            "auth_time": proof.auth_time,  # taken out again by the sign-in's receiver (staff.sign_ins)
        },
    )
    login(request, outcome.user, backend="django.contrib.auth.backends.ModelBackend")
    if proof.mfa:
        mark_verified_by_entra(request, list(proof.mfa))
    return HttpResponseRedirect(proof.next_url)


def _reauthenticated(request, proof):
    identity = (
        EntraIdentity.objects.filter(user=request.user).first() if request.user.is_authenticated else None
    )
    if identity is None or (identity.tenant_id, identity.object_id) != (proof.tenant_id, proof.object_id):
        raise SignInRefused(
            "other_account",
            "You confirmed with a different Microsoft account from the one signed in here. Confirm with "
            "your own account.",
            proof.upn,
        )
    # The groups follow Entra ID now, as at a sign-in: someone taken out of a mapped group cannot
    # confirm a risky action with the role they no longer have.
    sign_in_user(proof)
    mark_authenticated(request)
    if proof.mfa:
        mark_verified_by_entra(request, list(proof.mfa))
    record_staff_action(
        actor=request.user.get_username(),
        action="staff.reauthenticated",
        detail={"with": "entra", "mfa": list(proof.mfa)},
    )
    return HttpResponseRedirect(proof.next_url)


def _refused(request, refused: SignInRefused):
    actor = request.user.get_username() if request.user.is_authenticated else (refused.upn or "anonymous")
    if refused.reason in UNSOLICITED:
        # Anyone can send a browser to the callback: logged, not an audit row each.
        log.warning("Entra ID answer refused (%s) for %s", refused.reason, actor)
    else:
        record_staff_action(
            actor=actor,
            action="staff.entra_sign_in_refused",
            detail={"reason": refused.reason, "upn": refused.upn},
        )
    context = {
        "title": "Not signed in",
        "site_header": "MSP MFA console",
        "message": refused.message,
        "retry_url": reverse("admin:staff_entra_login"),
        "local_url": reverse("admin:login"),
    }
    return render(request, "staff/entra_refused.html", context, status=403)
