from django.apps import AppConfig
from django.db.backends.signals import connection_created


class RulesConfig(AppConfig):
    """Business rules: which indicators each sharing configuration sends."""

    name = "rules"
    verbose_name = "Business rules"

    def ready(self) -> None:
        from rules.sql import register_sqlite_functions

        # Exclusions by CIDR block call a Python function on SQLite; each connection needs it.
        connection_created.connect(register_sqlite_functions, dispatch_uid="rules.sqlite_functions")
