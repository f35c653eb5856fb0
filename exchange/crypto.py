"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with key rotation.

``CTE_ENCRYPTION_KEYS`` holds one or more keys: the first encrypts, every one decrypts, so a
new key is rolled in by putting it first and keeping the old one until ``reseal`` has run.
"""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


class SecretError(Exception):
    """A stored secret cannot be decrypted with the configured keys."""


@cache
def _fernet() -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in settings.CTE_ENCRYPTION_KEYS])
    except (ValueError, TypeError) as exc:
        raise SecretError(f"CTE_ENCRYPTION_KEY is not a valid Fernet key: {exc}") from None


@receiver(setting_changed)
def _forget_keys(setting, **kwargs):
    if setting == "CTE_ENCRYPTION_KEYS":
        _fernet.cache_clear()


def seal(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def unseal(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretError(
            "a stored secret cannot be decrypted: CTE_ENCRYPTION_KEY has changed. Put the old key "
            "after the new one (comma-separated) to read it."
        ) from None


def reseal(token: str) -> str:
    """The same secret encrypted with the current first key."""
    return _fernet().rotate(token.encode()).decode()
