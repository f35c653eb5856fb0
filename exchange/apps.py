from django.apps import AppConfig


class ExchangeConfig(AppConfig):
    name = "exchange"
    verbose_name = "Threat exchange"

    def ready(self) -> None:
        from exchange import checks, signals  # noqa: F401  (registers handlers and checks)
