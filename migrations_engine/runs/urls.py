"""The run page's endpoints, mounted at the console root by `msp_console/console_urls.py`."""

from __future__ import annotations

from django.urls import path

from migrations_engine.runs.views import roll_back, run_button, run_progress


def urls(site) -> list:
    """URL patterns mounted at the console's root, each wrapped in `site.admin_view`; the views get the
    site as a keyword (for its confirmation and re-authentication pages)."""
    extra = {"site": site}

    def button(action: str, url: str, name: str):
        return path(url, site.admin_view(run_button), {**extra, "action": action}, name=name)

    return [
        path(
            "runs/<int:pk>/progress.json",
            site.admin_view(run_progress),
            name="migrations_engine_run_progress",
        ),
        button("cancel", "runs/<int:pk>/cancel/", "migrations_engine_run_cancel"),
        button("retry", "runs/<int:pk>/retry/", "migrations_engine_run_retry"),
        button("resume", "runs/<int:pk>/resume/", "migrations_engine_run_resume"),
        path(
            "runs/<int:pk>/rollback/",
            site.admin_view(roll_back),
            extra,
            name="migrations_engine_run_rollback",
        ),
        button("approve", "runs/<int:pk>/approve/", "migrations_engine_run_approve"),
        button("resume_rollback", "runs/<int:pk>/finish-rollback/", "migrations_engine_run_finish_rollback"),
    ]
