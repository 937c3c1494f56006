"""Sessions for a security tool: signed out after a short idle time and at most SESSION_COOKIE_AGE after
signing in, and recent sign-in for the riskiest actions (`fresh`)."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login

LAST_SEEN = "staff.last_seen"
AUTHENTICATED_AT = "staff.authenticated_at"
SIGNED_IN_AT = "staff.signed_in_at"  # the session's start: it ends SESSION_COOKIE_AGE later, busy or not
# Requests a page makes by itself (the run page's progress polling): they do not count as activity.
POLL_HEADER = "HTTP_X_CONSOLE_POLL"


def mark_authenticated(request) -> None:
    """The person just proved who they are (sign-in, second factor, or re-authentication)."""
    now = time.time()
    request.session[AUTHENTICATED_AT] = now
    request.session[LAST_SEEN] = now


def mark_signed_in(request, *, proven_at: float | None) -> None:
    """A sign-in: the session's life starts (a sign-in again as the same person does not lengthen it),
    and when the credentials were just proven (`proven_at`), so does its recent proof."""
    now = time.time()
    request.session.setdefault(SIGNED_IN_AT, now)
    request.session[LAST_SEEN] = now
    if proven_at is not None:
        request.session[AUTHENTICATED_AT] = min(proven_at, now)


def is_fresh(request) -> bool:
    """True when the person proved who they are within STAFF_REAUTH_MINUTES."""
    at = request.session.get(AUTHENTICATED_AT)
    return at is not None and time.time() - at <= settings.STAFF_REAUTH_MINUTES * 60


class IdleTimeoutMiddleware:
    """Signs a staff member out after STAFF_IDLE_MINUTES without a request of their own."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            last = request.session.get(LAST_SEEN)
            # Each request saves the session, which pushes its cookie's expiry on: the longest life is
            # enforced here, from the sign-in.
            started = request.session.setdefault(SIGNED_IN_AT, now)
            if now - started > settings.SESSION_COOKIE_AGE:
                return self._sign_out(
                    request,
                    f"Your session ended {settings.SESSION_COOKIE_AGE // 3600} hours after you signed in.",
                )
            if last is not None and now - last > settings.STAFF_IDLE_MINUTES * 60:
                return self._sign_out(
                    request,
                    f"You were signed out after {settings.STAFF_IDLE_MINUTES} minutes without activity.",
                )
            if last is None or not request.META.get(POLL_HEADER):
                request.session[LAST_SEEN] = now
        return self.get_response(request)

    @staticmethod
    def _sign_out(request, why: str):
        logout(request)
        messages.info(request, f"{why} Sign in again.")
        return redirect_to_login(request.get_full_path())
