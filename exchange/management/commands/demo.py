from django.core.management.base import BaseCommand
from django.db import transaction

from exchange.models import PluginConfig

DEMO_CONFIGS = [
    {
        "name": "Demo: mixed IoC list",
        "file": "mixed-iocs.txt",
        "settings": {"preset": "plain_list", "severity": "medium", "tags": "demo"},
        "reputation": 6,
    },
    {
        "name": "Demo: URLhaus-style CSV",
        "file": "urlhaus-sample.csv",
        "settings": {"preset": "urlhaus_csv", "severity": "high", "tags": "demo"},
        "reputation": 7,
    },
]


class Command(BaseCommand):
    help = ("Load the demo configuration: web feeds served by this app itself from sample files, "
            "so that a pull works offline. Safe to run again.")

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000",
                            help="where this app's web server answers (default %(default)s)")

    @transaction.atomic
    def handle(self, *args, base_url, **options):
        for demo in DEMO_CONFIGS:
            settings = {**demo["settings"], "url": f"{base_url.rstrip('/')}/demo/feeds/{demo['file']}"}
            config, created = PluginConfig.objects.get_or_create(
                name=demo["name"],
                defaults={"connector": "webfeed", "settings": settings, "reputation": demo["reputation"],
                          "sync_interval": 60, "aging_days": 90},
            )
            if not created and config.settings.get("url") != settings["url"]:
                config.settings = {**config.settings, "url": settings["url"]}
                config.save(update_fields=["settings", "updated"])
            state = "created" if created else "kept"
            self.stdout.write(f"demo: {state} {config.name!r} ({settings['url']})")
        self.stdout.write("demo: the task cluster pulls them within a minute of starting")
