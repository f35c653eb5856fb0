"""Settings from the environment: strict readers, and refusals in production."""

import os
import subprocess
import sys
import tempfile
from unittest import mock

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase

from cteproject.env import env_bool, env_int, env_list, env_secret


def settings_in_a_new_process(env: dict, expression: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items()
             if key not in ("DEBUG", "SECRET_KEY", "CTE_ENCRYPTION_KEY", "DATABASE_URL", "REDIS_URL")}
    code = f"import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'cteproject.settings'); " \
           f"from django.conf import settings; print({expression})"
    return subprocess.run([sys.executable, "-c", code], env={**clean, "CTE_DATA_DIR": tempfile.gettempdir(), **env},
                          cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60)


class EnvReaderTests(SimpleTestCase):
    def test_booleans_accept_only_true_and_false_spellings(self):
        for raw, expected in [("true", True), ("YES", True), ("1", True), ("off", False), ("0", False), ("", True)]:
            with self.subTest(raw=raw), mock.patch.dict(os.environ, {"X_FLAG": raw}):
                self.assertIs(env_bool("X_FLAG", True), expected)
        with mock.patch.dict(os.environ, {"X_FLAG": "ture"}), self.assertRaisesMessage(ImproperlyConfigured,
                                                                                        "X_FLAG='ture'"):
            env_bool("X_FLAG", False)

    def test_integers_are_checked(self):
        with mock.patch.dict(os.environ, {"X_NUM": "12"}):
            self.assertEqual(env_int("X_NUM", 1), 12)
        for raw, message in [("twelve", "expected a whole number"), ("0", "must be at least 1")]:
            with self.subTest(raw=raw), mock.patch.dict(os.environ, {"X_NUM": raw}):
                with self.assertRaisesMessage(ImproperlyConfigured, message):
                    env_int("X_NUM", 1, minimum=1)

    def test_lists_and_secret_files(self):
        with mock.patch.dict(os.environ, {"X_LIST": " a, b ,,c "}):
            self.assertEqual(env_list("X_LIST", []), ["a", "b", "c"])
        with tempfile.NamedTemporaryFile("w", suffix=".key") as handle:
            handle.write("from-a-file\n")
            handle.flush()
            with mock.patch.dict(os.environ, {"X_SECRET_FILE": handle.name}):
                self.assertEqual(env_secret("X_SECRET"), "from-a-file")
        with mock.patch.dict(os.environ, {"X_SECRET_FILE": "/nonexistent/key"}):
            with self.assertRaisesMessage(ImproperlyConfigured, "X_SECRET_FILE='/nonexistent/key'"):
                env_secret("X_SECRET")


class ProductionSettingsTests(SimpleTestCase):
    def test_production_refuses_to_start_without_a_secret_key(self):
        result = settings_in_a_new_process({"DEBUG": "false"}, "settings.SECRET_KEY")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("SECRET_KEY is required when DEBUG is off", result.stderr)

    def test_production_refuses_to_start_without_an_encryption_key(self):
        result = settings_in_a_new_process({"DEBUG": "false", "SECRET_KEY": "k" * 50}, "settings.SECRET_KEY")
        self.assertIn("CTE_ENCRYPTION_KEY is required when DEBUG is off", result.stderr)

    def test_production_with_both_keys_starts_with_sqlite_and_the_orm_broker(self):
        key = "0" * 43 + "="
        result = settings_in_a_new_process({"DEBUG": "false", "SECRET_KEY": "k" * 50, "CTE_ENCRYPTION_KEY": key},
                                           "settings.DATABASES['default']['ENGINE'], settings.Q_CLUSTER.get('orm')")
        self.assertEqual(result.stdout.strip(), "django.db.backends.sqlite3 default", result.stderr)

    def test_database_url_and_redis_url_select_postgresql_and_redis(self):
        result = settings_in_a_new_process(
            {"DEBUG": "true", "DATABASE_URL": "postgres://u:p@db:5432/cte", "REDIS_URL": "redis://r:6379/0"},
            "settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']['NAME'], "
            "settings.Q_CLUSTER.get('redis'), 'orm' in settings.Q_CLUSTER",
        )
        self.assertEqual(result.stdout.strip(), "django.db.backends.postgresql cte redis://r:6379/0 False",
                         result.stderr)
