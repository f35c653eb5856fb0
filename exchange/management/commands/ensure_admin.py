import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the first admin login if there is none, and print its password once."

    def handle(self, *args, **options):
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            return
        username = os.environ.get("CTE_ADMIN_USER", "admin")
        password = os.environ.get("CTE_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        users.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(self.style.SUCCESS(
            f"\n  Admin login created: {username} / {password}\n"
            "  It is printed this once: keep it, or change it in the admin under Users.\n"
        ))
