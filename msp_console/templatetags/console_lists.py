"""The changelists' filter bar: each list filter as one drop-down in a row over the table, instead of
Django's sidebar that lists every value of every filter (a fleet of hundreds of tenants, every run). A
filter with more than SEARCH_FROM values (tenants, runs, actors) is a box to type in, with the values
as the browser's suggestions."""

from __future__ import annotations

from django import template

register = template.Library()

SEARCH_FROM = 25


@register.inclusion_tag("admin/includes/filter_bar.html")
def filter_bar(cl, skip: str = ""):
    """`skip`: comma-separated parameter names drawn elsewhere on the page (the fleet's saved views)."""
    skipped = {name for name in skip.split(",") if name}
    filters = []
    for spec in cl.filter_specs:
        if getattr(spec, "parameter_name", None) in skipped:
            continue
        choices = list(spec.choices(cl))
        active = next((c for c in choices[1:] if c.get("selected")), None)
        filters.append(
            {
                "title": spec.title,
                "choices": choices,
                "active": active is not None,
                "current": active["display"] if active else "",
                "searchable": len(choices) > SEARCH_FROM,
            }
        )
    return {"filters": filters, "cl": cl, "clear_url": cl.get_query_string(remove=cl.get_filters_params())}
