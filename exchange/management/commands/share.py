from django.core.management.base import BaseCommand

from exchange.management.commands._runs import named, run_each
from exchange.models import Run, SharingConfig
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
        configs = named(SharingConfig, names, all, "sharing configuration")
        run_each(self, configs, lambda pk: run_share(pk, trigger="manual"), summary, "share")
