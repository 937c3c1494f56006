"""The census progress page: each tenant of a census started from the fleet list, live until all are read."""

from __future__ import annotations

import datetime

from django.http import Http404, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from migrations_engine.census.progress import census_progress


def _asked(request) -> tuple[list[int], datetime.datetime]:
    """The tenants and the moment from the query string (`?tenants=1,2&since=<unix seconds>`)."""
    try:
        pks = [int(pk) for pk in request.GET.get("tenants", "").split(",") if pk]
        since = datetime.datetime.fromtimestamp(float(request.GET["since"]), tz=datetime.UTC)
    except (KeyError, ValueError, OverflowError, OSError) as exc:
        raise Http404("No census was asked for with these details.") from exc
    if not pks or len(pks) > 1000:
        raise Http404("No census was asked for with these details.")
    return pks, since


@require_GET
def census_progress_view(request, site):
    pks, since = _asked(request)
    progress = census_progress(request.user, pks, since)
    context = {
        **site.each_context(request),
        "title": "Census progress",
        "progress": progress,
        "progress_url": reverse("admin:migrations_engine_census_progress_json")
        + "?"
        + request.GET.urlencode(),
        "fleet_url": reverse("admin:tenants_customertenant_changelist"),
        "started": since.astimezone(timezone.get_current_timezone()),
    }
    return TemplateResponse(request, "migrations_engine/census_progress.html", context)


@require_GET
def census_progress_json(request, site):
    pks, since = _asked(request)
    return JsonResponse(census_progress(request.user, pks, since))
