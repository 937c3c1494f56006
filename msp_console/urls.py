"""URL routes: the admin-style console lives at the site root; django-rq's dashboard is superusers only."""

from __future__ import annotations

import functools

import django_rq.urls
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import URLPattern, URLResolver, include, path, reverse

from msp_console.admin_site import site


def superusers_only(view):
    """Anonymous users go to the login page; signed-in users who are not active superusers get 403.

    django-rq's own views let any staff member in (and see or delete every job of every tenant), and
    its stats views accept an API token: here neither is enough.
    """

    @functools.wraps(view)
    def guarded(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not (user.is_active and user.is_superuser):
            raise PermissionDenied("The job queues are for superusers only.")
        return view(request, *args, **kwargs)

    return guarded


def _guarded(patterns: list) -> list:
    guarded = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            guarded.append(
                URLResolver(
                    pattern.pattern,
                    _guarded(pattern.url_patterns),
                    pattern.default_kwargs,
                    pattern.app_name,
                    pattern.namespace,
                )
            )
        else:
            guarded.append(
                URLPattern(
                    pattern.pattern, superusers_only(pattern.callback), pattern.default_args, pattern.name
                )
            )
    return guarded


def favicon(request):
    """The console's icon (the static file's URL is looked up per request: it is hashed in production)."""
    return HttpResponsePermanentRedirect(static("console/favicon.svg"))


urlpatterns = [
    # Browsers ask for /favicon.ico whatever the page says: send them to the console's icon.
    path("favicon.ico", favicon),
    path("django-rq/", include((_guarded(django_rq.urls.urlpatterns), django_rq.urls.app_name))),
    path("", site.urls),
]
