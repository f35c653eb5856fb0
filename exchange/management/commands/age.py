from django.core.management.base import BaseCommand, CommandError

from exchange.aging import run_aging
from exchange.pull import Skipped


class Command(BaseCommand):
    help = "Run the aging sweep now: expired indicators become inactive; old inactive ones are deleted if configured."

    def handle(self, *args, **options):
        try:
            run = run_aging(trigger="manual")
        except Skipped as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(
            f"aging run #{run.pk}: {run.deactivated} indicators expired, {run.deleted} deleted"
        ))
