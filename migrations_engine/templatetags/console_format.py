"""Small template filters for the console pages."""

from django import template

register = template.Library()

LABELS = {
    "users_total": "Users",
    "per_user_enabled": "Per-user enabled (before)",
    "per_user_enforced": "Per-user enforced (before)",
    "per_user_disabled": "Per-user disabled (before)",
    "migrate_done": "Per-user MFA disabled",
    "migrate_failed": "Per-user failures",
    "bridge_done": "Bridged for the hand-off",
    "bridge_failed": "Bridge failures",
    "restore_done": "Restored from snapshot",
    "restore_failed": "Restore failures",
    "unbridge_done": "Bridge removed",
    "unbridge_failed": "Bridge removal failures",
}


@register.filter
def counter_label(key: str) -> str:
    """A run counter's name as people read it."""
    return LABELS.get(key, key.replace("_", " ").capitalize())


@register.filter
def plan_counter_label(key: str) -> str:
    """A plan's counter: what a migration would do, never what was done."""
    label = counter_label(key)
    if key.endswith("_done"):
        return f"Would: {label[0].lower()}{label[1:]}"
    return label
