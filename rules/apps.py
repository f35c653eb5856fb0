from django.apps import AppConfig


class RulesConfig(AppConfig):
    """Business rules: which indicators each sharing configuration sends (built in its own issue)."""

    name = "rules"
    verbose_name = "Business rules"
