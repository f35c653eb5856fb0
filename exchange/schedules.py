"""django-q2 schedules kept in step with the configurations: one per enabled pull, one per
enabled share, one for aging.

Nothing here runs at import or in ``AppConfig.ready()``: saving a configuration syncs its
schedule on commit (``exchange.signals``), and ``manage.py setup_schedules`` writes them all.
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

from exchange.models import PluginConfig, SharingConfig

PULL_TASK = "exchange.tasks.pull"
SHARE_TASK = "exchange.tasks.share"
AGING_TASK = "exchange.tasks.age"
AGING_SCHEDULE = "cte-aging"


def pull_schedule_name(config_id: int) -> str:
    return f"cte-pull-{config_id}"


def share_schedule_name(config_id: int) -> str:
    return f"cte-share-{config_id}"


def _wants_schedule(config: PluginConfig | None) -> bool:
    if config is None or not config.enabled:
        return False
    try:
        return config.get_connector().can_pull
    except LookupError:
        return False


def sync_pull_schedule(config_id: int) -> Schedule | None:
    """Create, update or delete the pull schedule of one configuration; return it if it runs."""
    config = PluginConfig.objects.filter(pk=config_id).first()
    name = pull_schedule_name(config_id)
    if not _wants_schedule(config):
        Schedule.objects.filter(name=name).delete()
        return None
    return _ensure(name, PULL_TASK, args=repr(config_id), minutes=config.sync_interval)


def sync_share_schedule(config_id: int) -> Schedule | None:
    """Create, update or delete the schedule of one sharing configuration; return it if it runs."""
    config = SharingConfig.objects.filter(pk=config_id).first()
    name = share_schedule_name(config_id)
    if config is None or not config.enabled:
        Schedule.objects.filter(name=name).delete()
        return None
    return _ensure(name, SHARE_TASK, args=repr(config_id), minutes=config.sync_interval)


def sync_aging_schedule() -> Schedule:
    return _ensure(AGING_SCHEDULE, AGING_TASK, args="", minutes=settings.CTE_AGING_INTERVAL)


def _ensure(name: str, func: str, *, args: str, minutes: int) -> Schedule:
    now = timezone.now()
    schedule, created = Schedule.objects.get_or_create(
        name=name,
        defaults={"func": func, "args": args, "schedule_type": Schedule.MINUTES, "minutes": minutes,
                  "repeats": -1, "next_run": now},
    )
    if not created and (schedule.func, schedule.args, schedule.minutes, schedule.repeats,
                        schedule.schedule_type) != (func, args, minutes, -1, Schedule.MINUTES):
        schedule.func, schedule.args, schedule.repeats = func, args, -1
        schedule.schedule_type, schedule.minutes = Schedule.MINUTES, minutes
        # A shorter interval takes effect now, not after the old, longer wait.
        soonest = now + timedelta(minutes=minutes)
        if schedule.next_run is None or schedule.next_run > soonest:
            schedule.next_run = soonest
        schedule.save()
    return schedule


def sync_all() -> dict[str, int]:
    """Write every schedule and remove those of configurations that are gone or disabled."""
    kept = {pull_schedule_name(pk) for pk in PluginConfig.objects.values_list("pk", flat=True)}
    removed, _ = Schedule.objects.filter(name__startswith="cte-pull-").exclude(name__in=kept).delete()
    active = sum(sync_pull_schedule(pk) is not None for pk in PluginConfig.objects.values_list("pk", flat=True))
    shares = set(SharingConfig.objects.values_list("pk", flat=True))
    kept = {share_schedule_name(pk) for pk in shares}
    removed += Schedule.objects.filter(name__startswith="cte-share-").exclude(name__in=kept).delete()[0]
    sharing = sum(sync_share_schedule(pk) is not None for pk in shares)
    sync_aging_schedule()
    return {"pull": active, "share": sharing, "removed": removed}
