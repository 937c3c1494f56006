"""The staff app's pages (sign-in steps, second factor, re-authentication), mounted at the console root."""

from __future__ import annotations


def urls(site) -> list:
    """URL patterns, each view wrapped by the caller's conventions (see each module's `urls`)."""
    return []
