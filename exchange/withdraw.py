"""Withdrawn values: a source revoked an indicator, or its ``valid_until`` passed (a record
with ``withdrawn`` set; the ingest calls this when it merges the batch that holds it).

The source no longer vouches for the value, so its sighting from that source expires now, and
the indicator's expiry becomes the latest of its other sightings (never, if one of them never
expires): an indicator no other source reports goes inactive at once, and the shares fed by
it retract it. A value this source never reported is left alone.
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.db.models import Case, Exists, Max, OuterRef, Q, Subquery, Value, When

from exchange.models import Indicator, Sighting
from exchange.normalize import Rejected, normalize

CHUNK = 1000


def expire_withdrawn(config, pairs: Iterable[tuple[str, str]], now: datetime) -> int:
    """Expire ``config``'s sightings of the withdrawn ``(type, value)`` pairs at ``now``; return
    how many sightings expired. Call inside the transaction that merges the batch."""
    by_type: dict[str, set[str]] = defaultdict(set)
    for type_, value in pairs:
        try:
            by_type[type_].add(normalize(type_, value))
        except Rejected:
            continue  # a value the store cannot hold was never stored
    expired = 0
    for type_, values in by_type.items():
        ordered = sorted(values)
        for start in range(0, len(ordered), CHUNK):
            expired += _expire(config, type_, ordered[start:start + CHUNK], now)
    return expired


def _expire(config, type_: str, values: list[str], now: datetime) -> int:
    live = Sighting.objects.filter(source=config, indicator__type=type_, indicator__value__in=values).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    indicator_ids = list(live.values_list("indicator_id", flat=True))
    if not indicator_ids:
        return 0
    count = Sighting.objects.filter(source=config, indicator_id__in=indicator_ids).update(expires_at=now, updated=now)
    never = Exists(Sighting.objects.filter(indicator=OuterRef("pk"), expires_at__isnull=True))
    latest = Subquery(
        Sighting.objects.filter(indicator=OuterRef("pk")).order_by().values("indicator")
        .annotate(latest=Max("expires_at")).values("latest")
    )
    indicators = Indicator.objects.filter(pk__in=indicator_ids)
    indicators.update(expires_at=Case(When(never, then=Value(None)), default=latest), updated=now)
    # `updated` moves so that the shares fed by this indicator see the change (as the aging sweep does).
    indicators.filter(active=True, expires_at__lte=now).update(active=False)
    return count
