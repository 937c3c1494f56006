"""The drift watch: re-reading migrated tenants and recording what is no longer as the migration left it."""
