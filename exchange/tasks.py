"""django-q2 task entry points: thin wrappers that the schedules name."""

import logging

from exchange.aging import run_aging
from exchange.models import PluginConfig
from exchange.pull import Skipped, run_pull

log = logging.getLogger("cte.tasks")


def pull(config_id: int, trigger: str = "schedule") -> str:
    try:
        run = run_pull(config_id, trigger=trigger)
    except Skipped as exc:
        log.info("pull skipped: %s", exc)
        return f"skipped: {exc}"
    except PluginConfig.DoesNotExist:
        return f"skipped: plugin configuration {config_id} no longer exists"
    return f"{run.status}: {run.received} received, {run.created} created, {run.rejected} rejected"


def age(trigger: str = "schedule") -> str:
    try:
        run = run_aging(trigger=trigger)
    except Skipped as exc:
        return f"skipped: {exc}"
    return f"{run.deactivated} expired, {run.deleted} deleted"


def share(config_id: int, trigger: str = "schedule") -> str:
    from exchange.models import SharingConfig
    from exchange.sharing import run_share

    try:
        run = run_share(config_id, trigger=trigger)
    except Skipped as exc:
        log.info("share skipped: %s", exc)
        return f"skipped: {exc}"
    except SharingConfig.DoesNotExist:
        return f"skipped: sharing configuration {config_id} no longer exists"
    return f"{run.status}: {run.shared} shared, {run.failed} failed, {run.retracted} retracted, {run.pending} pending"
