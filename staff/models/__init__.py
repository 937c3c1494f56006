"""The staff app's models: the role permissions' holder (more models join it here, one module each)."""

from staff.models.roles import ConsoleRole

__all__ = ["ConsoleRole"]
