"""Custom console views of this app (those a changelist cannot serve)."""

from __future__ import annotations


def urls(site) -> list:
    """URL patterns mounted at the console's root, each wrapped in `site.admin_view`."""
    return []
