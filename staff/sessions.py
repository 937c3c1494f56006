"""Sessions for a security tool: signed out after a short idle time, and recent sign-in for the riskiest
actions (`fresh`)."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login

LAST_SEEN = "staff.last_seen"
AUTHENTICATED_AT = "staff.authenticated_at"
# Requests a page makes by itself (the run page's progress polling): they do not count as activity.
POLL_HEADER = "HTTP_X_CONSOLE_POLL"


def mark_authenticated(request) -> None:
    """The person just proved who they are (sign-in, second factor, or re-authentication)."""
    now = time.time()
    request.session[AUTHENTICATED_AT] = now
    request.session[LAST_SEEN] = now


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
            if last is not None and now - last > settings.STAFF_IDLE_MINUTES * 60:
                logout(request)
                messages.info(
                    request,
                    f"You were signed out after {settings.STAFF_IDLE_MINUTES} minutes without activity.",
                )
                return redirect_to_login(request.get_full_path())
            if last is None or not request.META.get(POLL_HEADER):
                request.session[LAST_SEEN] = now
        return self.get_response(request)
