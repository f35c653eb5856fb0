from django.core.management.base import BaseCommand

from exchange.schedules import sync_all


class Command(BaseCommand):
    help = "Write the task schedules: one pull per enabled plugin configuration, and the aging sweep."

    def handle(self, *args, **options):
        counts = sync_all()
        self.stdout.write(self.style.SUCCESS(
            f"schedules: {counts['pull']} pull, 1 aging; {counts['removed']} stale removed"
        ))
