"""The aging sweep: expired indicators go inactive; long-inactive ones are deleted if configured."""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from exchange import runs
from exchange.locks import exclusive
from exchange.models import Indicator, Run, Settings
from exchange.pull import Skipped

log = logging.getLogger("cte.aging")
DELETE_CHUNK = 5000


def run_aging(*, trigger: str = "schedule") -> Run:
    general = Settings.load()
    if not general.module_enabled:
        raise Skipped("the Threat Exchange module is off (general settings)")
    with exclusive("aging") as acquired:
        if not acquired:
            raise Skipped("the previous aging run is still running")
        runs.close_interrupted(Run.Kind.AGING)
        run = runs.start(Run.Kind.AGING, trigger=trigger)
        now = timezone.now()
        deactivated = deactivate_expired(now)
        deleted = 0
        if general.delete_inactive_after:
            deleted = delete_inactive(now - timedelta(days=general.delete_inactive_after))
        run = runs.finish(run, deactivated=deactivated, deleted=deleted)
    log.info("aging: %d indicators expired, %d deleted", deactivated, deleted)
    return run


def deactivate_expired(now) -> int:
    # `updated` moves so that shares see the change and retract the indicator.
    return Indicator.objects.expired(now).update(active=False, updated=now)


def delete_inactive(cutoff) -> int:
    """Delete indicators inactive since before ``cutoff``, in chunks (each with its sightings)."""
    deleted = 0
    while True:
        with transaction.atomic():
            stale = Indicator.objects.filter(active=False, expires_at__lte=cutoff)
            ids = list(stale.values_list("pk", flat=True)[:DELETE_CHUNK])
            if not ids:
                return deleted
            _, per_model = Indicator.objects.filter(pk__in=ids).delete()
            deleted += per_model.get(Indicator._meta.label, 0)
