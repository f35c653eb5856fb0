from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from exchange.management.commands._runs import configs_named, summary
from exchange.models import PluginConfig, Run
from exchange.pull import Skipped, run_pull


class Command(BaseCommand):
    help = ("Re-fetch history: set a configuration's last run to N days ago (or clear it, to use its "
            "initial range), then pull now.")

    def add_arguments(self, parser):
        parser.add_argument("name", metavar="NAME")
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--days", type=int, help="fetch what arrived in the last N days")
        group.add_argument("--initial", action="store_true", help="clear the last run: use the initial range")

    def handle(self, *args, name, days, initial, **options):
        config = configs_named([name], False)[0]
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1")
        last_run = None if initial else timezone.now() - timedelta(days=days)
        PluginConfig.objects.filter(pk=config.pk).update(last_run=last_run, cursor=None)
        since = "its initial range" if initial else f"{last_run:%Y-%m-%d %H:%M} UTC"
        self.stdout.write(f"{config.name}: last run reset; pulling everything since {since}")
        try:
            run = run_pull(config.pk, trigger="backfill")
        except Skipped as exc:
            raise CommandError(f"{config.name}: {exc}") from None
        if run.status != Run.Status.SUCCESS:
            raise CommandError(f"{config.name}: {summary(run)}")
        self.stdout.write(self.style.SUCCESS(f"{config.name}: {summary(run)}"))
