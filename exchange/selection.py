"""The queries of sharing, in SQL: what a configuration selects, what is due, what is stale.

``candidates`` is the set a configuration should have at its destination now; ``due`` is the
part of it the ledger does not show as settled (the pending delta); ``stale`` are deliveries
shared earlier that no longer belong to the set (to retract). Each is one query with EXISTS /
NOT EXISTS subqueries that the unique (config, indicator) and (indicator, source) indexes serve.
"""

from datetime import datetime

from django.conf import settings
from django.db.models import BooleanField, Case, Exists, FilteredRelation, OuterRef, Q, QuerySet, When
from django.db.models.functions import Coalesce

from exchange.models import Delivery, Indicator, SharingConfig, Sighting

#: Higher reputation and more recent first: what goes first when a target's capacity runs out.
PRIORITY = ("-reputation", "-last_seen", "pk")
#: The columns a share run reads per indicator (``delivered``: see :func:`with_delivered`).
FIELDS = ("pk", "type", "value", "reputation", "severity", "tags", "comments",
          "first_seen", "last_seen", "expires_at", "updated", "delivered", "generation")


def reported_by(source_id: int) -> Exists:
    return Exists(Sighting.objects.filter(indicator=OuterRef("pk"), source_id=source_id))


def selected(rule, *, source_id: int | None = None, destination_id: int | None = None,
             now: datetime | None = None) -> QuerySet[Indicator]:
    """Active indicators ``rule`` selects (exclusions applied), reported by ``source_id`` when
    given, and never one the destination itself reported (it would loop back to it)."""
    indicators = rule.select(Indicator.objects.filter(active=True), now=now)
    if source_id:
        indicators = indicators.filter(reported_by(source_id))
    if destination_id:
        indicators = indicators.exclude(reported_by(destination_id))
    return indicators


def candidates(config: SharingConfig, *, action=None, now: datetime | None = None) -> QuerySet[Indicator]:
    """The indicators ``config`` should have at its destination now."""
    action = action or config.get_action()
    indicators = selected(config.rule, source_id=config.source_id, destination_id=config.destination_id, now=now)
    if action.types:
        indicators = indicators.filter(type__in=action.types)
    if not config.share_existing:
        indicators = indicators.filter(updated__gte=config.created)
    return indicators


def settled(config: SharingConfig, now: datetime) -> QuerySet[Delivery]:
    """Deliveries that need nothing this run: shared and unchanged since, or failed and waiting
    for their next attempt, or failed too often."""
    return Delivery.objects.filter(config=config, indicator=OuterRef("pk")).filter(
        Q(status=Delivery.Status.SHARED, version__gte=OuterRef("updated"))
        | Q(status=Delivery.Status.FAILED, next_attempt__gt=now)
        | Q(status=Delivery.Status.FAILED, attempts__gte=settings.CTE_SHARE_MAX_ATTEMPTS)
    )


def due(config: SharingConfig, *, action=None, now: datetime) -> QuerySet[Indicator]:
    """The pending delta: candidates not yet delivered, changed since delivery, or due a retry."""
    return candidates(config, action=action, now=now).exclude(Exists(settled(config, now)))


def with_delivered(indicators: QuerySet[Indicator], config: SharingConfig) -> QuerySet[Indicator]:
    """Annotate, from the indicator's ledger row (one join): ``delivered``, the destination holds
    it already (it changed since), so sending it again takes no room at the target; and
    ``generation``, how often it was retracted from there (see ``Outbound.generation``)."""
    return indicators.annotate(
        ledger=FilteredRelation("deliveries", condition=Q(deliveries__config=config)),
        delivered=Case(When(ledger__status=Delivery.Status.SHARED, then=True), default=False,
                       output_field=BooleanField()),
        generation=Coalesce("ledger__retractions", 0),
    )


def _left(config: SharingConfig, statuses: list[str], action, now: datetime | None) -> QuerySet[Delivery]:
    current = candidates(config, action=action, now=now).filter(pk=OuterRef("indicator_id"))
    return Delivery.objects.filter(config=config, status__in=statuses).exclude(Exists(current))


def stale(config: SharingConfig, *, action=None, now: datetime | None = None) -> QuerySet[Delivery]:
    """Shared deliveries whose indicator left the set: expired, excluded, no longer matching,
    no longer reported by the source, or deleted."""
    return _left(config, [Delivery.Status.SHARED], action, now)


def abandoned(config: SharingConfig, *, action=None, now: datetime | None = None) -> QuerySet[Delivery]:
    """Deliveries still pending or failed whose indicator left the set: there is nothing to
    retract and nothing to send any more."""
    return _left(config, [Delivery.Status.PENDING, Delivery.Status.FAILED], action, now)
