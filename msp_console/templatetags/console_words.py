"""Template filters for the console's words (msp_console/words.py): `{{ moment|ago }}` -> "3 hours ago"."""

from __future__ import annotations

from django import template

from msp_console import words

register = template.Library()


@register.filter
def ago(moment) -> str:
    return words.ago(moment, never="—")
