"""Writing the delivery ledger: one upsert per batch, whatever the batch's outcome."""

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection

from connectors.base import Outbound, PushResult
from exchange.models import Delivery, SharingConfig

NOT_ACKNOWLEDGED = "the destination neither accepted nor refused it"


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


class Clock:
    """A share run's time. ``now`` is its start (retry times, ``shared_at``); ``ticks`` hands out
    distinct, increasing moments from there, a microsecond apart, for the ``updated`` of the rows
    it writes, so that the rows one run writes keep their order in time: a TAXII collection's
    ``date_added``, which a reader pages with, never ties across a whole run."""

    def __init__(self, now: datetime):
        self.now = now
        self._last = now

    def ticks(self, count: int) -> list[datetime]:
        first = self._last + _TICK
        self._last += _TICK * count
        return [first + _TICK * index for index in range(count)]


_TICK = timedelta(microseconds=1)


def backoff(attempts: int) -> timedelta:
    minutes = settings.CTE_SHARE_RETRY_MINUTES * 2 ** max(attempts - 1, 0)
    return timedelta(minutes=min(minutes, 24 * 60))


def record_push(config: SharingConfig, rows: list[Row], result: PushResult, clock: Clock) -> tuple[int, int]:
    """Mark each row shared or failed as the destination answered; return (shared, failed)."""
    accepted = set(result.accepted)
    failures = {row.pk: result.failed.get(row.value, NOT_ACKNOWLEDGED) for row in rows if row.value not in accepted}
    shared = [row for row in rows if row.pk not in failures]
    _upsert([_entry(config, row, Delivery.Status.SHARED, moment, version=row.updated, shared_at=clock.now)
             for row, moment in zip(shared, clock.ticks(len(shared)), strict=True)])
    record_failure(config, [row for row in rows if row.pk in failures], failures, clock)
    return len(shared), len(failures)


def record_failure(config: SharingConfig, rows: list[Row], reasons: dict | str, clock: Clock) -> None:
    """Failed deliveries: one more attempt counted, and the next one pushed back."""
    previous = dict(Delivery.objects.filter(config=config, indicator_id__in=[row.pk for row in rows])
                    .values_list("indicator_id", "attempts"))
    entries = []
    for row, moment in zip(rows, clock.ticks(len(rows)), strict=True):
        attempts = previous.get(row.pk, 0) + 1
        reason = reasons if isinstance(reasons, str) else reasons[row.pk]
        entries.append(_entry(config, row, Delivery.Status.FAILED, moment, attempts=attempts,
                              last_error=reason[:2000], next_attempt=clock.now + backoff(attempts)))
    _upsert(entries)


def record_pending(config: SharingConfig, rows: list[Row], reason: str, clock: Clock) -> None:
    """Rows left for a later run (the target is full): pending, with why."""
    _upsert([_entry(config, row, Delivery.Status.PENDING, moment, last_error=reason)
             for row, moment in zip(rows, clock.ticks(len(rows)), strict=True)])


def record_retracted(config: SharingConfig, delivery_ids: Iterable[int], clock: Clock) -> int:
    """Deliveries taken back from the destination."""
    ids = list(delivery_ids)
    table = Delivery._meta.db_table
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET status = %s, retracted_at = %s, last_error = '', attempts = 0, updated = %s, "
            "retractions = retractions + 1 WHERE id = %s",
            [(Delivery.Status.RETRACTED, _stored(clock.now), _stored(moment), pk)
             for pk, moment in zip(ids, clock.ticks(len(ids)), strict=True)])
    return len(ids)


# The ledger's upsert, written by hand: Django's bulk_create(update_conflicts=...) spent most of
# a large share run preparing values (300,000 rows: about 30 s, against a few here).
_COLUMNS = ("config_id", "indicator_id", "type", "value", "status", "attempts", "last_error", "next_attempt",
            "version", "shared_at", "retracted_at", "retractions", "created", "updated")
# What a new outcome replaces; `retractions` and `created` stay as they were.
_REPLACED = ("type", "value", "status", "attempts", "last_error", "next_attempt", "version", "shared_at",
             "retracted_at", "updated")
_PG_TYPES = ("bigint", "bigint", "varchar", "varchar", "varchar", "smallint", "text", "timestamptz", "timestamptz",
             "timestamptz", "timestamptz", "smallint", "timestamptz", "timestamptz")
CHUNK = 5000


def _entry(config: SharingConfig, row: Row, status: str, moment: datetime, *, attempts: int = 0,
           last_error: str = "", next_attempt=None, version=None, shared_at=None) -> tuple:
    """One ledger row in ``_COLUMNS`` order, written at ``moment``."""
    return (config.pk, row.pk, row.type, row.value, status, attempts, last_error, next_attempt, version, shared_at,
            None, 0, moment, moment)


def _upsert(entries: list[tuple]) -> None:
    table = Delivery._meta.db_table
    names = ", ".join(_COLUMNS)
    replaced = ", ".join(f"{column} = excluded.{column}" for column in _REPLACED)
    conflict = f"ON CONFLICT (config_id, indicator_id) DO UPDATE SET {replaced}"
    with connection.cursor() as cursor:
        for start in range(0, len(entries), CHUNK):
            chunk = entries[start:start + CHUNK]
            if connection.vendor == "postgresql":
                # One statement per chunk: each column travels as one array.
                arrays = ", ".join(f"%s::{kind}[]" for kind in _PG_TYPES)
                cursor.execute(f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {conflict}",
                               [list(column) for column in zip(*chunk, strict=True)])
            else:
                marks = ", ".join(["%s"] * len(_COLUMNS))
                cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks}) {conflict}",
                                   [tuple(map(_stored, entry)) for entry in chunk])


def _stored(value):
    # Raw SQL skips the ORM's conversion: SQLite must get datetimes in the ORM's own text form,
    # or they would not compare with the ones the ORM wrote.
    if isinstance(value, datetime) and connection.vendor != "postgresql":
        return connection.ops.adapt_datetimefield_value(value)
    return value
