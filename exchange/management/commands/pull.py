from django.core.management.base import BaseCommand, CommandError

from exchange.management.commands._runs import configs_named, summary
from exchange.models import Run
from exchange.pull import Skipped, run_pull


class Command(BaseCommand):
    help = "Pull now from the named plugin configurations (or every enabled one with --all)."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", metavar="NAME")
        parser.add_argument("--all", action="store_true", help="every enabled plugin configuration that pulls")

    def handle(self, *args, names, all, **options):
        failed = []
        for config in configs_named(names, all):
            if all and not config.get_connector().can_pull:
                continue
            try:
                run = run_pull(config.pk, trigger="manual")
            except Skipped as exc:
                self.stdout.write(self.style.WARNING(f"{config.name}: skipped, {exc}"))
                continue
            style = self.style.SUCCESS if run.status == Run.Status.SUCCESS else self.style.ERROR
            self.stdout.write(style(f"{config.name}: {summary(run)}"))
            if run.status != Run.Status.SUCCESS:
                failed.append(config.name)
        if failed:
            raise CommandError(f"pull failed for {', '.join(failed)}")
