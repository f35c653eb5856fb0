"""Writing the delivery ledger: one upsert per batch, whatever the batch's outcome."""

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F

from connectors.base import Outbound, PushResult
from exchange.models import Delivery, SharingConfig

NOT_ACKNOWLEDGED = "the destination neither accepted nor refused it"
_UPDATED = ["type", "value", "status", "attempts", "last_error", "next_attempt", "version", "shared_at",
            "retracted_at", "updated"]


class Row:
    """One indicator as a share run read it (the columns of ``selection.FIELDS``)."""

    __slots__ = ("pk", "type", "value", "reputation", "severity", "tags", "comments",
                 "first_seen", "last_seen", "expires_at", "updated", "delivered", "generation")

    def __init__(self, values: Sequence):
        for name, value in zip(self.__slots__, values, strict=True):
            setattr(self, name, value)

    def outbound(self) -> Outbound:
        return Outbound(self.type, self.value, self.reputation, self.severity, list(self.tags or []),
                        self.comments, self.first_seen, self.last_seen, self.expires_at, self.generation)

    @property
    def size(self) -> int:
        """Bytes this value takes in a list: its UTF-8 form and a line break."""
        return len(self.value.encode()) + 1


def backoff(attempts: int) -> timedelta:
    minutes = settings.CTE_SHARE_RETRY_MINUTES * 2 ** max(attempts - 1, 0)
    return timedelta(minutes=min(minutes, 24 * 60))


def record_push(config: SharingConfig, rows: list[Row], result: PushResult, now: datetime) -> tuple[int, int]:
    """Mark each row shared or failed as the destination answered; return (shared, failed)."""
    accepted = set(result.accepted)
    failures = {row.pk: result.failed.get(row.value, NOT_ACKNOWLEDGED) for row in rows if row.value not in accepted}
    shared = [row for row in rows if row.pk not in failures]
    _upsert(config, [_shared(config, row, now) for row in shared])
    record_failure(config, [row for row in rows if row.pk in failures], failures, now)
    return len(shared), len(failures)


def record_failure(config: SharingConfig, rows: list[Row], reasons: dict | str, now: datetime) -> None:
    """Failed deliveries: one more attempt counted, and the next one pushed back."""
    previous = dict(Delivery.objects.filter(config=config, indicator_id__in=[row.pk for row in rows])
                    .values_list("indicator_id", "attempts"))
    deliveries = []
    for row in rows:
        attempts = previous.get(row.pk, 0) + 1
        reason = reasons if isinstance(reasons, str) else reasons[row.pk]
        deliveries.append(Delivery(
            config=config, indicator_id=row.pk, type=row.type, value=row.value, status=Delivery.Status.FAILED,
            attempts=attempts, last_error=reason[:2000], next_attempt=now + backoff(attempts), updated=now,
        ))
    _upsert(config, deliveries)


def record_pending(config: SharingConfig, rows: list[Row], reason: str, now: datetime) -> None:
    """Rows left for a later run (the target is full): pending, with why."""
    _upsert(config, [
        Delivery(config=config, indicator_id=row.pk, type=row.type, value=row.value, status=Delivery.Status.PENDING,
                 last_error=reason, updated=now)
        for row in rows
    ])


def record_retracted(config: SharingConfig, delivery_ids: Iterable[int], now: datetime) -> int:
    return Delivery.objects.filter(pk__in=list(delivery_ids)).update(
        status=Delivery.Status.RETRACTED, retracted_at=now, last_error="", attempts=0, updated=now,
        retractions=F("retractions") + 1,
    )


def _shared(config: SharingConfig, row: Row, now: datetime) -> Delivery:
    return Delivery(config=config, indicator_id=row.pk, type=row.type, value=row.value,
                    status=Delivery.Status.SHARED, attempts=0, last_error="", version=row.updated,
                    shared_at=now, updated=now)


def _upsert(config: SharingConfig, deliveries: list[Delivery]) -> None:
    if deliveries:
        Delivery.objects.bulk_create(
            deliveries, update_conflicts=True, unique_fields=["config", "indicator"], update_fields=_UPDATED,
            batch_size=1000,
        )
