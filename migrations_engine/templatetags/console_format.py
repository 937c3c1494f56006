"""Small template filters for the console pages."""

from django import template

from migrations_engine.runs.run_page import counter_label as _counter_label

register = template.Library()


@register.filter
def counter_label(key: str) -> str:
    """A run counter's name as people read it."""
    return _counter_label(key)


@register.filter
def plan_counter_label(key: str) -> str:
    """A plan's counter: what a migration would do, never what was done."""
    return _counter_label(key, plan=True)
