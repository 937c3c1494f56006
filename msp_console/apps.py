from django.apps import AppConfig


class MspConsoleConfig(AppConfig):
    """The project itself: settings, URLs, the console's AdminSite and the deployment system checks."""

    name = "msp_console"
    verbose_name = "MSP MFA console"

    def ready(self) -> None:
        from msp_console import checks  # noqa: F401 - registers the system checks
