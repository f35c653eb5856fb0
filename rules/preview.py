"""What a rule would share, before it shares anything: counts by type, samples, and, for one
destination, what would be added, what is there already and what would be taken back. Reads
only: the admin's preview page and ``manage.py preview`` both call :func:`preview`."""

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from exchange import selection
from exchange.models import Delivery, Indicator, PluginConfig, SharingConfig
from rules.models import BusinessRule

SAMPLES = 20


@dataclass
class DestinationFigures:
    """How the selection compares with what one destination holds now."""

    destination: PluginConfig
    to_add: int
    already_shared: int
    to_retract: int


@dataclass
class Preview:
    rule: BusinessRule
    source: PluginConfig | None
    total: int
    by_type: dict[str, int]
    samples: list[Indicator] = field(default_factory=list)
    destination: DestinationFigures | None = None


def preview(rule: BusinessRule, *, source: PluginConfig | None = None, destination: PluginConfig | None = None,
            now: datetime | None = None) -> Preview:
    """What ``rule`` selects now among the active indicators (reported by ``source`` when
    given; never those ``destination`` reported itself, which a share would not send back)."""
    now = now or timezone.now()
    selected = selection.selected(rule, source_id=source.pk if source else None,
                                  destination_id=destination.pk if destination else None, now=now)
    by_type = dict(selected.order_by("type").values_list("type").annotate(count=Count("pk")))
    result = Preview(rule, source, sum(by_type.values()), by_type,
                     list(selected.order_by(*selection.PRIORITY)[:SAMPLES]))
    if destination is not None:
        result.destination = _figures(rule, selected, source, destination, result.total)
    return result


def _figures(rule, selected, source, destination, total: int) -> DestinationFigures:
    # What the destination holds: values shared to it by any sharing configuration.
    held = Delivery.objects.filter(config__destination=destination, status=Delivery.Status.SHARED)
    already = selected.filter(Exists(held.filter(indicator=OuterRef("pk")))).count()
    # What would be taken back: shared by the configurations that use this rule (from this
    # source) towards this destination, and no longer selected.
    configs = SharingConfig.objects.filter(rule=rule, destination=destination)
    if source is not None:
        configs = configs.filter(source=source)
    leaving = held.filter(config__in=configs).exclude(Exists(selected.filter(pk=OuterRef("indicator_id"))))
    return DestinationFigures(destination, total - already, already,
                              leaving.values("indicator_id").distinct().count())
