"""System checks (``manage.py check``) for configuration mistakes that would bite later."""

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_encryption_key(app_configs, **kwargs):
    from exchange.crypto import SecretError, _fernet

    try:
        _fernet()
    except SecretError as exc:
        return [Error(str(exc), hint="Generate one with cryptography's Fernet.generate_key().", id="cte.E001")]
    return []


@register(deploy=True)
def check_production_database(app_configs, **kwargs):
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        return [Warning(
            "SQLite is the embedded default: one machine, one writer at a time.",
            hint="Set DATABASE_URL=postgres://... for production.", id="cte.W001",
        )]
    return []
