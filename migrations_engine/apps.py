from django.apps import AppConfig


class MigrationsEngineConfig(AppConfig):
    """Runs, the per-tenant pipeline and the only Graph client."""

    name = "migrations_engine"
    verbose_name = "Migration engine"

    def ready(self) -> None:
        from migrations_engine import checks  # noqa: F401 - registers the system checks
