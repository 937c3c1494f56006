"""The app's admins, one module per feature; importing them registers them on the console's site
(Django's admin autodiscovery imports this module). Shared bases are in `msp_console.admin_base`."""

from migrations_engine.audit import admin as audit_admin
from migrations_engine.drift import admin as drift_admin
from migrations_engine.exports import admin as exports_admin
from migrations_engine.runs import admin as runs_admin
from migrations_engine.waves import admin as waves_admin

__all__ = ["audit_admin", "drift_admin", "exports_admin", "runs_admin", "waves_admin"]
