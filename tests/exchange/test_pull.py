"""The pull run: checkpoint semantics, resume after failure or kill, exclusion, recorded runs."""

import threading
from datetime import timedelta

from django.db import connections
from django.test import TestCase, TransactionTestCase, override_settings
from django.utils import timezone
from django_q.models import Schedule

from exchange.locks import exclusive
from exchange.models import Indicator, PluginConfig, RejectedRecord, Run, Settings, Sighting
from exchange.pull import Skipped, run_pull
from exchange.runs import INTERRUPTED
from exchange.schedules import pull_schedule_name
from tests.support.factories import make_config
from tests.support.processes import kill_pull_when

BATCHES = [[f"198.51.100.{i}" for i in range(start, start + 10)] for start in range(0, 50, 10)]


def scripted(name="scripted", batches=BATCHES, fields=None, **settings_):
    return make_config(name, connector="scripted", settings={"batches": batches, "type": "ipv4", **settings_},
                       **(fields or {}))


def store_snapshot():
    return sorted(Indicator.objects.values_list("type", "value", "active")), sorted(
        Sighting.objects.values_list("indicator__value", "source__name", "hits")
    )


class CheckpointTests(TestCase):
    def test_a_successful_pull_sets_last_run_to_the_cycle_start(self):
        config = scripted()
        before = timezone.now()
        run = run_pull(config.pk, trigger="manual")
        config.refresh_from_db()
        self.assertEqual(run.status, Run.Status.SUCCESS)
        self.assertEqual(config.last_run, run.started)
        self.assertLessEqual(before, run.started)
        self.assertIsNone(config.cursor)
        self.assertEqual((run.received, run.created, run.batches), (50, 50, 5))
        self.assertEqual(config.last_status, PluginConfig.Status.OK)

    def test_the_first_pull_goes_back_the_initial_range_and_the_next_starts_at_the_checkpoint(self):
        config = scripted(fields={"initial_range": 14})
        first = run_pull(config.pk)
        self.assertAlmostEqual(first.since, first.started - timedelta(days=14), delta=timedelta(seconds=1))
        second = run_pull(config.pk)
        self.assertEqual(second.since, first.started)
        config.refresh_from_db()
        self.assertEqual(config.storage["since_seen"], first.started.isoformat())

    def test_a_failure_half_way_keeps_what_was_merged_and_never_moves_the_checkpoint(self):
        config = scripted(fail_at=2)
        run = run_pull(config.pk)
        config.refresh_from_db()
        self.assertEqual(run.status, Run.Status.FAILED)
        self.assertEqual(run.error, "scripted failure at batch 2")
        self.assertIsNone(config.last_run)
        self.assertEqual(config.cursor, 2)
        self.assertEqual(Indicator.objects.count(), 20)
        self.assertEqual((config.last_status, config.last_error), ("error", "scripted failure at batch 2"))
        self.assertTrue(config.enabled)

        config.refresh_from_db()
        config.settings.pop("fail_at")
        config.save()
        resumed = run_pull(config.pk)
        config.refresh_from_db()
        self.assertEqual(resumed.status, Run.Status.SUCCESS)
        self.assertEqual(config.storage["started_at_cursor"], 2)
        self.assertEqual((resumed.received, resumed.created), (30, 30))
        self.assertEqual(config.last_run, resumed.started)
        self.assertEqual((config.last_status, config.last_error), ("ok", ""))

        clean = scripted("clean")
        run_pull(clean.pk)
        self.assertEqual(Indicator.objects.count(), 50)
        self.assertEqual(set(Sighting.objects.values_list("hits", flat=True)), {1})

    def test_a_failed_run_after_a_checkpoint_keeps_the_old_checkpoint(self):
        config = scripted()
        first = run_pull(config.pk)
        config.refresh_from_db()
        config.settings["fail_at"] = 0
        config.save()
        run_pull(config.pk)
        config.refresh_from_db()
        self.assertEqual(config.last_run, first.started)

    def test_an_unexpected_exception_is_recorded_with_its_type(self):
        config = scripted(crash_at=1)
        run = run_pull(config.pk)
        self.assertEqual(run.status, Run.Status.FAILED)
        self.assertEqual(run.error, "ValueError: unexpected answer at batch 1")
        self.assertEqual(Indicator.objects.count(), 10)

    def test_a_permanent_error_disables_the_configuration_and_its_schedule(self):
        with self.captureOnCommitCallbacks(execute=True):
            config = scripted(fail_at=0, permanent=True)
        self.assertTrue(Schedule.objects.filter(name=pull_schedule_name(config.pk)).exists())
        with self.captureOnCommitCallbacks(execute=True):
            run = run_pull(config.pk)
        config.refresh_from_db()
        self.assertFalse(config.enabled)
        self.assertIn("configuration disabled", run.error)
        self.assertFalse(Schedule.objects.filter(name=pull_schedule_name(config.pk)).exists())

    def test_rejected_records_are_kept_on_the_run_up_to_the_cap(self):
        config = scripted(batches=[["198.51.100.1", "999.1.1.1", "1.2.3", "300.1.1.1", "x"]])
        with override_settings(CTE_MAX_REJECTS_PER_RUN=3):
            run = run_pull(config.pk)
        self.assertEqual((run.received, run.created, run.rejected), (5, 1, 4))
        rejects = list(RejectedRecord.objects.filter(run=run).order_by("position"))
        self.assertEqual(len(rejects), 3)
        self.assertEqual((rejects[0].position, rejects[0].value, rejects[0].reason),
                         (1, "999.1.1.1", "ipv4: 999.1.1.1 is not an IPv4 address"))

    def test_positions_continue_across_batches(self):
        config = scripted(batches=[["198.51.100.1", "198.51.100.2"], ["198.51.100.3", "bad"]])
        run = run_pull(config.pk)
        self.assertEqual(RejectedRecord.objects.get(run=run).position, 3)


class WhenNotToRunTests(TestCase):
    def test_module_off_means_nothing_runs(self):
        config = scripted()
        Settings.objects.update_or_create(pk=1, defaults={"module_enabled": False})
        with self.assertRaisesMessage(Skipped, "module is off"):
            run_pull(config.pk)
        self.assertFalse(Run.objects.exists())

    def test_a_disabled_configuration_runs_only_when_asked(self):
        config = scripted(fields={"enabled": False})
        with self.assertRaisesMessage(Skipped, "disabled"):
            run_pull(config.pk, trigger="schedule")
        self.assertEqual(run_pull(config.pk, trigger="manual").status, Run.Status.SUCCESS)

    def test_a_run_that_finds_the_previous_one_still_going_exits(self):
        config = scripted()
        holding, release = threading.Event(), threading.Event()

        def hold_lock():
            try:
                with exclusive(f"pull:{config.pk}") as acquired:
                    assert acquired
                    holding.set()
                    release.wait(10)
            finally:
                connections.close_all()

        holder = threading.Thread(target=hold_lock)
        holder.start()
        try:
            self.assertTrue(holding.wait(10))
            with self.assertRaisesMessage(Skipped, "previous pull is still running"):
                run_pull(config.pk)
        finally:
            release.set()
            holder.join()
        self.assertFalse(Run.objects.exists())
        self.assertEqual(run_pull(config.pk).status, Run.Status.SUCCESS)


class KilledRunTests(TransactionTestCase):
    """A pull killed with SIGKILL in the middle resumes after its last committed batch."""

    def test_a_killed_pull_resumes_without_loss_or_double_counting(self):
        config = scripted(pause=0.4)

        def two_batches_committed():
            config.refresh_from_db()
            return bool(config.cursor and config.cursor >= 2)

        kill_pull_when(config.name, two_batches_committed)

        config.refresh_from_db()
        killed = Run.objects.get(config=config)
        self.assertEqual(killed.status, Run.Status.RUNNING)  # nobody could close it
        self.assertIsNone(config.last_run)
        committed = config.cursor
        self.assertEqual(Indicator.objects.count(), committed * 10)

        config.settings["pause"] = 0
        PluginConfig.objects.filter(pk=config.pk).update(settings=config.settings)
        resumed = run_pull(config.pk)
        killed.refresh_from_db()
        self.assertEqual((killed.status, killed.error), (Run.Status.FAILED, INTERRUPTED))
        self.assertEqual(resumed.status, Run.Status.SUCCESS)
        self.assertEqual(resumed.received, 50 - committed * 10)
        config.refresh_from_db()
        self.assertEqual(config.last_run, resumed.started)

        resumed_store = store_snapshot()
        Indicator.objects.all().delete()
        clean = scripted("clean-run")
        run_pull(clean.pk)
        clean_store = store_snapshot()
        self.assertEqual(resumed_store[0], clean_store[0])
        self.assertEqual([(v, h) for v, _, h in resumed_store[1]], [(v, h) for v, _, h in clean_store[1]])
