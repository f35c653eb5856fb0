"""Secrets at rest: encrypted in the database, never shown by accident, keys rotate."""

import base64

from cryptography.fernet import Fernet
from django.db import connection
from django.test import TestCase, override_settings

from exchange.crypto import SecretError
from exchange.fields import Sealed
from exchange.models import PluginConfig, Settings, Tenant
from tests.support.factories import make_config


def stored(model, pk, column) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {model._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


class SecretsTests(TestCase):
    def test_secrets_are_encrypted_in_the_database(self):
        config = make_config("feed", secrets={"password": "hunter2-plugin"})
        tenant = Tenant.objects.create(name="t", url="https://t.goskope.com", token="hunter2-v2", v1_token="hunter2-v1")
        general = Settings.load()
        general.proxy_password = "hunter2-proxy"
        general.save()
        for model, pk, column in [(PluginConfig, config.pk, "secrets"), (Tenant, tenant.pk, "token"),
                                  (Tenant, tenant.pk, "v1_token"), (Settings, 1, "proxy_password")]:
            raw = stored(model, pk, column)
            self.assertNotIn("hunter2", raw)
            self.assertTrue(Fernet(Fernet.generate_key())._signing_key is not None and raw.startswith("gAAAA"))
        config.refresh_from_db()
        tenant.refresh_from_db()
        self.assertEqual(config.get_secrets(), {"password": "hunter2-plugin"})
        self.assertEqual((tenant.token.reveal(), tenant.v1_token.reveal()), ("hunter2-v2", "hunter2-v1"))

    def test_a_loaded_secret_prints_as_a_mask(self):
        tenant = Tenant.objects.create(name="t", url="https://t.goskope.com", token="hunter2-v2")
        tenant.refresh_from_db()
        self.assertIsInstance(tenant.token, Sealed)
        self.assertEqual((str(tenant.token), repr(tenant.token), f"{tenant.token}"), ("********",) * 3)
        self.assertNotIn("hunter2", str(tenant.__dict__))

    def test_saving_without_touching_a_secret_keeps_it(self):
        tenant = Tenant.objects.create(name="t", url="https://t.goskope.com", token="keep-me")
        tenant.refresh_from_db()
        token_before = stored(Tenant, tenant.pk, "token")
        tenant.alert_query = "x"
        tenant.save()
        self.assertEqual(stored(Tenant, tenant.pk, "token"), token_before)

    def test_empty_secrets_stay_empty(self):
        config = make_config("feed")
        config.refresh_from_db()
        self.assertEqual((config.get_secrets(), stored(PluginConfig, config.pk, "secrets")), ({}, ""))

    def test_keys_rotate_and_a_wrong_key_says_what_happened(self):
        old = base64.urlsafe_b64encode(b"o" * 32).decode()
        new = base64.urlsafe_b64encode(b"n" * 32).decode()
        with override_settings(CTE_ENCRYPTION_KEYS=[old]):
            config = make_config("feed", secrets={"password": "p"})
        with override_settings(CTE_ENCRYPTION_KEYS=[new, old]):
            config.refresh_from_db()
            self.assertEqual(config.get_secrets(), {"password": "p"})
        with override_settings(CTE_ENCRYPTION_KEYS=[new]):
            config.refresh_from_db()
            with self.assertRaisesMessage(SecretError, "CTE_ENCRYPTION_KEY has changed"):
                config.get_secrets()
