"""A pull run: fetch from a source, batch by batch, into the store.

The checkpoint (``last_run``) is the start of the cycle and is written only when the whole
pull succeeds, so nothing that arrived during a run is skipped and a failed run never moves
it. The connector's cursor and storage are saved in the same transaction as each batch's
merge, so a run killed at any point resumes after the last batch it committed: nothing lost,
nothing merged twice.
"""

import copy
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from connectors.base import Connector, ConnectorError, Context
from connectors.http import session_for
from exchange import runs
from exchange.ingest import BatchResult, MergeHints, Prepared, merge_prepared, prepare_batch
from exchange.locks import exclusive
from exchange.models import Indicator, PluginConfig, RejectedRecord, Run, Settings, Sighting
from exchange.planner import analyze_after
from exchange.readahead import read_ahead

log = logging.getLogger("cte.pull")


class Skipped(Exception):
    """The pull did not start; ``str()`` says why."""


def run_pull(config_id: int, *, trigger: str = "schedule") -> Run:
    """Run one pull of ``config_id``; raise :class:`Skipped` when it must not run now."""
    if not Settings.load().module_enabled:
        raise Skipped("the Threat Exchange module is off (general settings)")
    config = PluginConfig.objects.get(pk=config_id)
    if not config.enabled and trigger == "schedule":
        raise Skipped(f"{config.name} is disabled")
    connector = config.get_connector()
    if not connector.can_pull:
        raise Skipped(f"{config.name}: the {connector.label} connector does not pull")
    with exclusive(f"pull:{config.pk}") as acquired:
        if not acquired:
            raise Skipped(f"{config.name}: the previous pull is still running")
        runs.close_interrupted(Run.Kind.PULL, config)
        return _pull(config, connector, trigger)


def _pull(config: PluginConfig, connector: Connector, trigger: str) -> Run:
    config.refresh_from_db()
    if config.tenant_id:
        config.tenant  # noqa: B018  (loaded here: the connector reads it in the read-ahead thread)
    started = timezone.now()
    since = config.last_run or started - timedelta(days=config.initial_range)
    run = runs.start(Run.Kind.PULL, config=config, trigger=trigger, since=since, started=started)
    log.info("pull %s: since %s, %s", config.name, since.isoformat(), "resuming" if config.cursor else "from start")
    try:
        ctx = Context(
            config=config, settings=dict(config.settings), secrets=config.get_secrets(),
            session=session_for(config), since=since, cursor=config.cursor, storage=dict(config.storage or {}),
            run_id=run.pk,
        )
        recorder = _Recorder(run, config)
        hints = MergeHints(Sighting.objects.filter(source=config).exists())
        for batch in read_ahead(lambda: _prepared(connector, ctx, config), name=f"cte-pull-{config.pk}"):
            with transaction.atomic():
                recorder.record(merge_prepared(config, batch.prepared, hints))
                PluginConfig.objects.filter(pk=config.pk).update(cursor=batch.cursor, storage=batch.storage)
    except ConnectorError as exc:
        return _failed(run, config, str(exc), permanent=exc.permanent)
    except Exception as exc:  # a bug or an unexpected answer: record it, keep the checkpoint
        log.exception("pull %s failed", config.name)
        return _failed(run, config, f"{type(exc).__name__}: {exc}")
    with transaction.atomic():
        PluginConfig.objects.filter(pk=config.pk).update(
            last_run=started, cursor=None, storage=ctx.storage,
            last_status=PluginConfig.Status.OK, last_error="",
        )
        run = runs.finish(run)
        transaction.on_commit(lambda: _queue_shares(config))
    analyze_after(run.created + run.updated, Indicator, Sighting)
    log.info("pull %s: %d received, %d created, %d updated, %d unchanged, %d rejected", config.name,
             run.received, run.created, run.updated, run.unchanged, run.rejected)
    return run


@dataclass
class _Ready:
    prepared: Prepared
    cursor: object
    storage: dict  # the connector's storage as it was when it handed over this batch


def _prepared(connector: Connector, ctx: Context, config: PluginConfig) -> Iterator[_Ready]:
    """The connector's batches, normalized; runs in the read-ahead thread."""
    position = 0
    for batch in connector.pull(ctx):
        prepared = prepare_batch(config, batch.records, timezone.now(), position)
        position += prepared.received
        yield _Ready(prepared, batch.cursor, copy.deepcopy(ctx.storage))


class _Recorder:
    """Adds a batch's counters to its run and keeps its rejected records, up to the cap."""

    def __init__(self, run: Run, config: PluginConfig):
        self.run = run
        self.kept = 0
        self.cap = settings.CTE_MAX_REJECTS_PER_RUN

    def record(self, result: BatchResult) -> None:
        room = max(self.cap - self.kept, 0)
        RejectedRecord.objects.bulk_create(
            RejectedRecord(run=self.run, position=r.position, type=r.type[:10], value=r.value, reason=r.reason)
            for r in result.rejections[:room]
        )
        self.kept += min(room, len(result.rejections))
        Run.objects.filter(pk=self.run.pk).update(
            received=F("received") + result.received, created=F("created") + result.created,
            updated=F("updated") + result.updated, unchanged=F("unchanged") + result.unchanged,
            rejected=F("rejected") + result.rejected, withdrawn=F("withdrawn") + result.withdrawn,
            batches=F("batches") + 1,
        )


def _queue_shares(config: PluginConfig) -> None:
    from exchange.sharing import queue_shares

    try:
        queue_shares(config)
    except Exception:  # the broker is down: the shares' own schedules still run them
        log.exception("pull %s: could not queue the shares it feeds", config.name)


def _failed(run: Run, config: PluginConfig, error: str, *, permanent: bool = False) -> Run:
    from exchange.schedules import sync_pull_schedule

    if permanent:
        error = f"{error} (configuration disabled: fix it, then enable it again)"
    log.warning("pull %s failed: %s", config.name, error)
    with transaction.atomic():
        changes = {"last_status": PluginConfig.Status.ERROR, "last_error": error, "last_error_at": timezone.now()}
        if permanent:
            changes["enabled"] = False
        PluginConfig.objects.filter(pk=config.pk).update(**changes)
        run = runs.finish(run, error=error)
        if permanent:
            transaction.on_commit(lambda: sync_pull_schedule(config.pk))
    analyze_after(run.created + run.updated, Indicator, Sighting)
    return run
