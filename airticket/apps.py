from django.apps import AppConfig


class AirticketConfig(AppConfig):
    name = "airticket"
    verbose_name = "Air-ticket project"
