"""A second factor before any console page: an authenticator app's code (TOTP) or a single-use backup code
for local accounts (django-otp), or MFA proven at Entra ID for staff who sign in there.

Who needs one: every superuser, everyone when STAFF_SECOND_FACTOR_REQUIRED, and anyone who enrolled one.
Until the session has passed it, every console page redirects to the second-factor page (enrolment
first, when the person has no authenticator yet).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode
from django_otp import devices_for_user, user_has_device

ENTRA_MFA = "staff.entra_mfa"  # session key: the Entra ID sign-in proved MFA (its claims, as a list)
# Pages a signed-in person reaches before the second factor: the steps themselves, signing out, and the
# Entra ID sign-in (which proves MFA itself). Static files and /healthz never reach this middleware's
# check (they are not console pages of a signed-in person, or are answered earlier).
_OPEN_PREFIXES = ("/account/second-factor/", "/account/entra/", "/logout/", "/static/", "/favicon.ico")


def mark_verified_by_entra(request, methods: list[str]) -> None:
    """The Entra ID sign-in of this session proved MFA (`methods`: the token's amr/acrs values)."""
    request.session[ENTRA_MFA] = list(methods)


def needs_second_factor(user) -> bool:
    """Whether `user` must pass a second factor before any console page."""
    return bool(user.is_superuser or settings.STAFF_SECOND_FACTOR_REQUIRED or user_has_device(user))


def is_satisfied(request) -> bool:
    """Whether this session passed a second factor: an OTP device, or MFA at Entra ID, which counts for
    everyone but superusers (the console cannot see every exclusion of a Conditional Access policy)."""
    user = request.user
    if hasattr(user, "is_verified") and user.is_verified():
        return True
    return bool(request.session.get(ENTRA_MFA)) and not user.is_superuser


def confirmed_devices(user) -> list:
    """The person's confirmed authenticators and backup codes, TOTP first."""
    return sorted(devices_for_user(user), key=lambda device: device.persistent_id.startswith("otp_static"))


class SecondFactorMiddleware:
    """Sends a signed-in staff member who still owes a second factor to the second-factor page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not request.path.startswith(_OPEN_PREFIXES)
            and needs_second_factor(user)
            and not is_satisfied(request)
        ):
            if request.path.endswith(".json") or request.headers.get("X-Console-Poll"):
                return redirect_to_login(request.get_full_path())  # a script: no page to show
            target = reverse("admin:staff_second_factor")
            return HttpResponseRedirect(f"{target}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)
