from django.core.management.base import BaseCommand

from exchange.management.commands._runs import configs_named, run_each, summary
from exchange.pull import run_pull


class Command(BaseCommand):
    help = "Pull now from the named plugin configurations (or every enabled one with --all)."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", metavar="NAME")
        parser.add_argument("--all", action="store_true", help="every enabled plugin configuration that pulls")

    def handle(self, *args, names, all, **options):
        configs = [config for config in configs_named(names, all) if not all or config.get_connector().can_pull]
        run_each(self, configs, lambda pk: run_pull(pk, trigger="manual"), summary, "pull")
