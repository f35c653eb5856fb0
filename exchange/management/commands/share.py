from django.core.management.base import BaseCommand, CommandError

from exchange.management.commands._runs import named
from exchange.models import Run, SharingConfig
from exchange.pull import Skipped
from exchange.sharing import run_share


def summary(run: Run) -> str:
    text = (f"run #{run.pk} {run.status}: {run.received} selected, {run.shared} shared, {run.failed} failed, "
            f"{run.retracted} retracted, {run.pending} pending")
    return f"{text}; {run.error}" if run.error else text


class Command(BaseCommand):
    help = "Share now with the named sharing configurations (or every enabled one with --all)."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", metavar="NAME")
        parser.add_argument("--all", action="store_true", help="every enabled sharing configuration")

    def handle(self, *args, names, all, **options):
        failed = []
        for config in named(SharingConfig, names, all, "sharing configuration"):
            try:
                run = run_share(config.pk, trigger="manual")
            except Skipped as exc:
                self.stdout.write(self.style.WARNING(f"{config.name}: skipped, {exc}"))
                continue
            style = self.style.SUCCESS if run.status == Run.Status.SUCCESS else self.style.ERROR
            self.stdout.write(style(f"{config.name}: {summary(run)}"))
            if run.status != Run.Status.SUCCESS:
                failed.append(config.name)
        if failed:
            raise CommandError(f"share failed for {', '.join(failed)}")
