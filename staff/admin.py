"""The staff app's admins on the console site (each lives with its feature; importing registers it)."""

from staff import devices_admin, lockout_admin  # noqa: F401
from staff.entra import admin as entra_admin  # noqa: F401
