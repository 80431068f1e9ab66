from django.apps import AppConfig


class CdcLambdaConfig(AppConfig):
    name = "cdc_lambda"
    verbose_name = "CDC projection"
