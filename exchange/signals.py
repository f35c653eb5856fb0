"""Signal handlers: schedules follow the configurations (synced when a save or delete commits)."""

from functools import partial

from django.db import connections, transaction
from django.db.models.signals import post_delete, post_migrate, post_save
from django.dispatch import receiver
from django_q.models import Schedule

from exchange.models import PluginConfig, SharingConfig
from exchange.schedules import pull_schedule_name, share_schedule_name, sync_pull_schedule, sync_share_schedule


@receiver(post_save, sender=PluginConfig, dispatch_uid="cte-pull-schedule-save")
def _config_saved(sender, instance: PluginConfig, raw: bool = False, **kwargs):
    if not raw:
        transaction.on_commit(partial(sync_pull_schedule, instance.pk))


@receiver(post_delete, sender=PluginConfig, dispatch_uid="cte-pull-schedule-delete")
def _config_deleted(sender, instance: PluginConfig, **kwargs):
    name = pull_schedule_name(instance.pk)
    transaction.on_commit(lambda: Schedule.objects.filter(name=name).delete())


@receiver(post_save, sender=SharingConfig, dispatch_uid="cte-share-schedule-save")
def _sharing_saved(sender, instance: SharingConfig, raw: bool = False, **kwargs):
    if not raw:
        transaction.on_commit(partial(sync_share_schedule, instance.pk))


@receiver(post_delete, sender=SharingConfig, dispatch_uid="cte-share-schedule-delete")
def _sharing_deleted(sender, instance: SharingConfig, **kwargs):
    name = share_schedule_name(instance.pk)
    transaction.on_commit(lambda: Schedule.objects.filter(name=name).delete())


@receiver(post_migrate, dispatch_uid="cte-sqlite-checkpoint")
def _fold_sqlite_wal(sender, using: str = "default", **kwargs):
    """After a migrate on SQLite (WAL mode), move the log into the database file, so that a file
    copy of it, a backup or the test runner's clone of the test database, is complete."""
    connection = connections[using]
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
