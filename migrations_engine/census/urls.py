"""The census's pages that are not about one row, mounted at the console root by
`msp_console/console_urls.py`."""

from __future__ import annotations

from django.urls import path

from migrations_engine.census.views import census_progress_json, census_progress_view


def urls(site) -> list:
    """URL patterns wrapped in `site.admin_view`; the view gets the site as a keyword."""
    return [
        path(
            "census/progress/",
            site.admin_view(census_progress_view),
            {"site": site},
            name="migrations_engine_census_progress",
        ),
        path(
            "census/progress.json",
            site.admin_view(census_progress_json),
            {"site": site},
            name="migrations_engine_census_progress_json",
        ),
    ]
