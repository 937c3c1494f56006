"""The staff app's models, one module each: the role permissions' holder, and the Entra ID sign-in's
mappings and accounts."""

from staff.models.entra import EntraIdentity, EntraRoleMapping
from staff.models.roles import ConsoleRole

__all__ = ["ConsoleRole", "EntraIdentity", "EntraRoleMapping"]
