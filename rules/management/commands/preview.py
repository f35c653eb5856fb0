from django.core.management.base import BaseCommand

from exchange.management.commands._runs import named
from exchange.models import PluginConfig
from rules.models import BusinessRule
from rules.preview import SAMPLES, preview


def _named(model, name: str, what: str):
    return named(model, [name], what=what)[0]


class Command(BaseCommand):
    help = ("Show what a business rule selects now: counts by type and samples; with --destination, how many "
            "indicators a share would add there, how many it holds already and how many would be retracted. "
            "Writes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("rule", metavar="RULE", help="the business rule's name")
        parser.add_argument("--source", metavar="S", help="only indicators this plugin configuration reported")
        parser.add_argument("--destination", metavar="D", help="compare with what this plugin configuration holds")

    def handle(self, *args, rule, source, destination, **options):
        result = preview(
            _named(BusinessRule, rule, "business rule"),
            source=_named(PluginConfig, source, "plugin configuration") if source else None,
            destination=_named(PluginConfig, destination, "plugin configuration") if destination else None,
        )
        origin = f" reported by {result.source}" if result.source else ""
        self.stdout.write(f"{result.rule}: {result.total:,} active indicator(s){origin}")
        for kind, count in result.by_type.items():
            self.stdout.write(f"  {kind:<9}{count:>12,}")
        if result.samples:
            self.stdout.write(f"first {min(SAMPLES, result.total)} (highest reputation, most recent first):")
        for indicator in result.samples:
            self.stdout.write(f"  {indicator.type:<9}{indicator.reputation:>3}  {indicator.severity:<9}"
                              f"{indicator.last_seen:%Y-%m-%d %H:%M}  {indicator.value}")
        figures = result.destination
        if figures is not None:
            self.stdout.write(f"at {figures.destination}: {figures.to_add:,} to add, {figures.already_shared:,} "
                              f"already shared, {figures.to_retract:,} to retract")
