"""Times in the staff member's own time zone: the browser says which (`Intl`), a cookie carries it, and
this middleware turns it on for the request. Until the first page has set it (or with a name that is
not an IANA zone), times are in TIME_ZONE."""

from __future__ import annotations

import functools
import zoneinfo

from django.utils import timezone

COOKIE = "console_tz"


@functools.cache
def known_zones() -> frozenset[str]:
    """Every IANA zone name on this machine (read from disk once per process, not per request)."""
    return frozenset(zoneinfo.available_timezones())


def zone_named(name: str) -> zoneinfo.ZoneInfo | None:
    if not name or len(name) > 64 or name not in known_zones():
        return None
    return zoneinfo.ZoneInfo(name)


class StaffTimeZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = zone_named(request.COOKIES.get(COOKIE, ""))
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
