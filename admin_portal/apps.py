from django.apps import AppConfig


class AdminPortalConfig(AppConfig):
    name = "admin_portal"
    verbose_name = "Air-ticket operations"
