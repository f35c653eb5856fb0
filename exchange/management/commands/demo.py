import secrets

from django.core.management.base import BaseCommand
from django.db import transaction

from exchange.models import PluginConfig, SharingConfig
from rules.models import BusinessRule

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

# The two rules of the seed article, each shared to a destination this app serves itself.
DEMO_RULES = [
    {"name": "Demo: all URLs except one", "expression": "type = url",
     "exclusions": "# never shared, whichever source reports it\nhttps://intranet.example.com/status\n"},
    {"name": "Demo: MD5 and SHA-256 except one hash", "expression": "type in (md5, sha256)",
     "exclusions": "1donotsharethishash23\n"},
]
DEMO_DESTINATIONS = [("Demo: firewall lists", "edl"), ("Demo: TAXII collections", "taxii_server")]
DEMO_SHARES = [
    {"name": "Demo: URLs to a firewall list", "rule": 0, "destination": 0,
     "params": {"slug": "demo-urls", "url_format": "no_scheme"}, "path": "/feeds/edl/demo-urls.txt"},
    {"name": "Demo: hashes to a TAXII collection", "rule": 1, "destination": 1,
     "params": {"slug": "demo-hashes", "title": "CTE demo: malware hashes"}, "path": "/taxii2/cte/collections/"},
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
        self.share_demo(base_url.rstrip("/"))
        self.stdout.write("demo: the task cluster pulls them within a minute of starting, then shares them")

    def share_demo(self, base_url: str) -> None:
        rules = [BusinessRule.objects.get_or_create(name=rule["name"], defaults=rule)[0] for rule in DEMO_RULES]
        destinations = [PluginConfig.objects.get_or_create(name=name, defaults={"connector": connector})[0]
                        for name, connector in DEMO_DESTINATIONS]
        for share in DEMO_SHARES:
            if SharingConfig.objects.filter(name=share["name"]).exists():
                self.stdout.write(f"demo: kept {share['name']!r}")
                continue
            destination = destinations[share["destination"]]
            config = SharingConfig(name=share["name"], rule=rules[share["rule"]], destination=destination,
                                   action="publish", params=share["params"], sync_interval=5)
            token = secrets.token_urlsafe(24)
            config.set_secrets({"token": token})
            config.full_clean()
            config.save()
            # Shown once: it is stored encrypted and the admin never shows it again.
            self.stdout.write(f"demo: created {config.name!r}: {base_url}{share['path']} with the header "
                              f"'Authorization: Bearer {token}'")
