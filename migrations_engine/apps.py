from django.apps import AppConfig


class MigrationsEngineConfig(AppConfig):
    """Runs, the per-tenant pipeline and the only Graph client."""

    name = "migrations_engine"
    verbose_name = "Migration engine"

    def ready(self) -> None:
        # Why here: the receivers and checks need the models loaded.
        from migrations_engine import checks  # noqa: F401 - registers the system checks
        from migrations_engine.runs.tenant_state import connect_receivers

        connect_receivers()
