"""A share run: send what a sharing configuration selects to its destination, and keep the ledger.

Append actions: retract what left the set, then send the pending delta in batches within the
action's request limits, while the target's capacity lasts (higher reputation and more recent
first); what does not fit stays pending with the reason. Replace actions: send the whole
current set in one push, skipped when its digest equals the last pushed one. Every batch's
outcome is written to the ledger as soon as the destination answers, so a run that stops
half-way loses nothing: the next one carries on with what is still due.
"""

import hashlib
import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from connectors.base import Action, Connector, ConnectorError, Context, Outbound
from connectors.http import session_for
from exchange import ledger, runs, selection
from exchange.ledger import Row
from exchange.locks import exclusive
from exchange.models import Delivery, PluginConfig, Run, Settings, SharingConfig
from exchange.planner import analyze_after
from exchange.pull import Skipped
from exchange.sharing_checks import same_target

log = logging.getLogger("cte.share")
CHUNK = 2000


def run_share(config_id: int, *, trigger: str = "schedule") -> Run:
    """Run one share of ``config_id``; raise :class:`Skipped` when it must not run now."""
    if not Settings.load().module_enabled:
        raise Skipped("the Threat Exchange module is off (general settings)")
    config = SharingConfig.objects.select_related("destination", "rule", "source").get(pk=config_id)
    if not config.enabled and trigger != "manual":
        raise Skipped(f"{config.name} is disabled")
    if not config.destination.enabled:
        raise Skipped(f"{config.name}: the destination {config.destination} is disabled")
    with exclusive(f"share:{config.pk}") as acquired:
        if not acquired:
            raise Skipped(f"{config.name}: the previous share is still running")
        runs.close_interrupted(Run.Kind.SHARE, sharing=config)
        return _Share(config, trigger).run()


@dataclass
class _Counts:
    shared: int = 0
    failed: int = 0
    retracted: int = 0
    pending: int = 0
    received: int = 0
    notes: list[str] = field(default_factory=list)


class _Share:
    def __init__(self, config: SharingConfig, trigger: str):
        self.config = config
        self.trigger = trigger
        self.now = timezone.now()
        self.clock = ledger.Clock(self.now)
        self.counts = _Counts()

    def run(self) -> Run:
        config = self.config
        self.record = runs.start(Run.Kind.SHARE, sharing=config, trigger=self.trigger, started=self.now)
        try:
            self.connector: Connector = config.destination.get_connector()
            self.action: Action = config.get_action()
            self.params = {**config.params, "sharing": config.name}
            self.ctx = _context(config, self.record.pk)
            if self.action.mode == "replace":
                self._replace()
            else:
                self._append()
            # Always: a destination may hold changes an earlier, failed run left undeployed.
            self.connector.finish(self.ctx, self.action, self.params)
        except ConnectorError as exc:
            return self._failed(str(exc), permanent=exc.permanent)
        except Exception as exc:  # a bug or an unexpected answer: record it, keep the ledger as written
            log.exception("share %s failed", config.name)
            return self._failed(f"{type(exc).__name__}: {exc}")
        return self._succeeded()

    # Append mode -------------------------------------------------------------------------------

    def _append(self) -> None:
        if self.action.retracts:
            self._retract_stale()
        self._forget_abandoned()
        capacity = _Capacity.of(self.action, self._present())
        batch = _Batch(self.action)
        over: list[Row] = []
        due = selection.with_delivered(selection.due(self.config, action=self.action, now=self.now), self.config)
        for values in due.order_by(*selection.PRIORITY).values_list(*selection.FIELDS).iterator(chunk_size=CHUNK):
            row = Row(values)
            self.counts.received += 1
            if not row.delivered and (over or not capacity.take(row)):
                over.append(row)
                if len(over) >= CHUNK:
                    self._leave_pending(over, capacity)
                continue
            if not batch.fits(row):
                self._send(batch.drain())
            batch.add(row)
        self._send(batch.drain())
        self._leave_pending(over, capacity)

    def _send(self, rows: list[Row], *, even_empty: bool = False) -> None:
        if not rows and not even_empty:
            return
        try:
            result = self.connector.push(self.ctx, self.action, self.params, [row.outbound() for row in rows])
        except ConnectorError as exc:
            ledger.record_failure(self.config, rows, str(exc), self.clock)
            self.counts.failed += len(rows)
            raise
        with transaction.atomic():
            shared, failed = ledger.record_push(self.config, rows, result, self.clock)
        self.counts.shared += shared
        self.counts.failed += failed

    def _present(self):
        """The values at the target now: what this configuration shared, and what the others
        writing the same target did (their sum is what the target's capacity bounds)."""
        configs = [self.config.pk, *(other.pk for other in same_target(self.config))]
        shared = Delivery.objects.filter(config__in=configs, status=Delivery.Status.SHARED)
        return shared.order_by().values_list("value", flat=True).distinct()

    def _forget_abandoned(self) -> None:
        selection.abandoned(self.config, action=self.action, now=self.now).delete()

    def _leave_pending(self, rows: list[Row], capacity: "_Capacity") -> None:
        if rows:
            ledger.record_pending(self.config, rows, capacity.reason(), self.clock)
            self.counts.pending += len(rows)
            rows.clear()

    def _retract_stale(self) -> None:
        stale = selection.stale(self.config, action=self.action, now=self.now)
        while rows := list(stale.values_list("pk", "type", "value", "retractions")[: self.action.batch_items]):
            result = self.connector.retract(self.ctx, self.action, self.params,
                                            [Outbound(type_, value, generation=n) for _, type_, value, n in rows])
            accepted = set(result.accepted)
            gone = [pk for pk, _, value, _ in rows if value in accepted]
            self.counts.retracted += ledger.record_retracted(self.config, gone, self.clock)
            if len(gone) < len(rows):
                self._note_refused_retractions([row for row in rows if row[2] not in accepted], result.failed)
                break  # what the destination keeps refusing waits for the next run

    def _note_refused_retractions(self, rows: list[tuple], reasons: dict[str, str]) -> None:
        for pk, _, value, _ in rows:
            reason = reasons.get(value, ledger.NOT_ACKNOWLEDGED)
            Delivery.objects.filter(pk=pk).update(last_error=f"retraction refused: {reason}"[:2000])
        self.counts.notes.append(f"{len(rows)} retraction(s) refused by the destination")

    # Replace mode ------------------------------------------------------------------------------

    def _replace(self) -> None:
        self._forget_abandoned()
        capacity = _Capacity.of(self.action, [])
        chosen: list[Row] = []
        over: list[Row] = []
        current = selection.with_delivered(selection.candidates(self.config, action=self.action, now=self.now),
                                           self.config)
        for values in current.order_by(*selection.PRIORITY).values_list(*selection.FIELDS).iterator(chunk_size=CHUNK):
            row = Row(values)
            self.counts.received += 1
            (chosen if not over and capacity.take(row) else over).append(row)
            if len(over) >= CHUNK:
                self._leave_pending(over, capacity)
        self._leave_pending(over, capacity)
        digest = _digest(chosen)
        if digest == self.config.content_hash and not self._unsettled(chosen):
            self.counts.notes.append("the set is unchanged since the last push: push skipped")
            return
        self._send(chosen, even_empty=True)  # an empty set empties the target: that is what replace means
        kept = {row.pk for row in chosen}
        gone = Delivery.objects.filter(config=self.config, status=Delivery.Status.SHARED).exclude(indicator_id__in=kept)
        self.counts.retracted += ledger.record_retracted(self.config, gone.values_list("pk", flat=True), self.clock)
        SharingConfig.objects.filter(pk=self.config.pk).update(content_hash=digest)

    def _unsettled(self, rows: list[Row]) -> bool:
        """True when the ledger is behind the set (e.g. it was cleared): push again to rebuild it."""
        settled = [Delivery.Status.SHARED, Delivery.Status.FAILED]
        return Delivery.objects.filter(config=self.config, status__in=settled).count() != len(rows)

    # Outcome -----------------------------------------------------------------------------------

    def _counters(self) -> dict:
        c = self.counts
        return {"shared": c.shared, "failed": c.failed, "retracted": c.retracted, "pending": c.pending,
                "received": c.received}

    def _succeeded(self) -> Run:
        with transaction.atomic():
            SharingConfig.objects.filter(pk=self.config.pk).update(
                last_run=self.now, last_status=SharingConfig.Status.OK, last_error="")
            SharingConfig.objects.filter(pk=self.config.pk).update(storage=self.ctx.storage)
            run = runs.finish(self.record, **self._counters())
        self._analyze()
        if self.counts.notes:
            Run.objects.filter(pk=run.pk).update(error="; ".join(self.counts.notes))
            run.refresh_from_db()
        log.info("share %s: %d shared, %d failed, %d retracted, %d pending", self.config.name,
                 run.shared, run.failed, run.retracted, run.pending)
        return run

    def _failed(self, error: str, *, permanent: bool = False) -> Run:
        from exchange.schedules import sync_share_schedule

        if permanent:
            error = f"{error} (sharing configuration disabled: fix it, then enable it again)"
        log.warning("share %s failed: %s", self.config.name, error)
        with transaction.atomic():
            changes = {"last_status": SharingConfig.Status.ERROR, "last_error": error, "last_error_at": timezone.now()}
            if permanent:
                changes["enabled"] = False
            SharingConfig.objects.filter(pk=self.config.pk).update(**changes)
            run = runs.finish(self.record, error=error, **self._counters())
            if permanent:
                transaction.on_commit(lambda: sync_share_schedule(self.config.pk))
        self._analyze()
        return run

    def _analyze(self) -> None:
        c = self.counts
        analyze_after(c.shared + c.failed + c.retracted + c.pending, Delivery)


class _Batch:
    """One request's worth of rows, within the action's item and byte limits."""

    def __init__(self, action: Action):
        self.items, self.bytes = action.batch_items, action.batch_bytes
        self.rows: list[Row] = []
        self.size = 0

    def fits(self, row: Row) -> bool:
        if not self.rows:
            return True
        return len(self.rows) < self.items and (self.bytes is None or self.size + row.size <= self.bytes)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        self.size += row.size

    def drain(self) -> list[Row]:
        rows, self.rows, self.size = self.rows, [], 0
        return rows


@dataclass
class _Capacity:
    """What the target can still take: its limits minus what is already there."""

    max_items: int | None
    max_bytes: int | None
    items: int = 0
    bytes: int = 0

    @classmethod
    def of(cls, action: Action, present) -> "_Capacity":
        """``present``: the values at the target already (an iterable, read only if there are limits)."""
        capacity = cls(action.max_items, action.max_bytes)
        if capacity.max_items is not None or capacity.max_bytes is not None:
            values = present.iterator(chunk_size=CHUNK) if hasattr(present, "iterator") else present
            for value in values:
                capacity.items += 1
                capacity.bytes += len(value.encode()) + 1
        return capacity

    def take(self, row: Row) -> bool:
        if self.max_items is not None and self.items + 1 > self.max_items:
            return False
        if self.max_bytes is not None and self.bytes + row.size > self.max_bytes:
            return False
        self.items += 1
        self.bytes += row.size
        return True

    def reason(self) -> str:
        limits = []
        if self.max_items is not None:
            limits.append(f"{self.max_items:,} items")
        if self.max_bytes is not None:
            limits.append(f"{self.max_bytes:,} bytes")
        return (f"over the target's capacity ({' / '.join(limits)}): waits for room; higher reputation "
                "and more recent indicators went first")


def _context(config: SharingConfig, run_id: int) -> Context:
    destination = config.destination
    return Context(config=destination, settings=dict(destination.settings), secrets=destination.get_secrets(),
                   session=session_for(destination), storage=dict(config.storage or {}), run_id=run_id)


def _digest(rows: list[Row]) -> str:
    digest = hashlib.sha256()
    for line in sorted(f"{row.type}\t{row.value}\n" for row in rows):
        digest.update(line.encode())
    return digest.hexdigest()


def queue_shares(source: PluginConfig) -> int:
    """After a successful pull of ``source``: queue the shares it feeds."""
    from django_q.tasks import async_task

    ids = list(SharingConfig.objects.fed_by(source).values_list("pk", flat=True))
    for pk in ids:
        async_task("exchange.tasks.share", pk, "pull", task_name=f"cte-share-{pk}-after-pull")
    return len(ids)
