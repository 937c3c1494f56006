from django.apps import AppConfig


class TenantsConfig(AppConfig):
    """Who the customers are and what they consented to."""

    name = "tenants"
    verbose_name = "Customer tenants"
