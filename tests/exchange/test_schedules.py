"""One django-q2 schedule per enabled pulling configuration, kept in sync on commit."""

from datetime import timedelta
from io import StringIO

from django.core.management import call_command
from django.test import TestCase
from django.utils import timezone
from django_q.models import Schedule

from exchange import tasks
from exchange.models import Run, Settings
from exchange.schedules import AGING_SCHEDULE, PULL_TASK, pull_schedule_name
from tests.support.factories import make_config


class ScheduleSyncTests(TestCase):
    def create(self, **fields):
        with self.captureOnCommitCallbacks(execute=True):
            return make_config("scheduled", connector="scripted", settings={"batches": []}, **fields)

    def schedule(self, config):
        return Schedule.objects.filter(name=pull_schedule_name(config.pk)).first()

    def test_an_enabled_configuration_gets_a_schedule_at_its_interval(self):
        config = self.create(sync_interval=15)
        schedule = self.schedule(config)
        self.assertEqual((schedule.func, schedule.args, schedule.minutes, schedule.repeats),
                         (PULL_TASK, repr(config.pk), 15, -1))
        self.assertEqual(schedule.schedule_type, Schedule.MINUTES)

    def test_nothing_is_scheduled_before_the_save_commits(self):
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            config = make_config("pending", connector="scripted", settings={"batches": []})
        self.assertIsNone(self.schedule(config))
        self.assertEqual(len(callbacks), 1)

    def test_changing_the_interval_updates_the_schedule_and_brings_the_next_run_forward(self):
        config = self.create(sync_interval=600)
        Schedule.objects.filter(pk=self.schedule(config).pk).update(next_run=timezone.now() + timedelta(hours=9))
        config.sync_interval = 5
        with self.captureOnCommitCallbacks(execute=True):
            config.save()
        schedule = self.schedule(config)
        self.assertEqual(schedule.minutes, 5)
        self.assertLessEqual(schedule.next_run, timezone.now() + timedelta(minutes=5))

    def test_disabling_removes_the_schedule_and_enabling_restores_it(self):
        config = self.create()
        config.enabled = False
        with self.captureOnCommitCallbacks(execute=True):
            config.save()
        self.assertIsNone(self.schedule(config))
        config.enabled = True
        with self.captureOnCommitCallbacks(execute=True):
            config.save()
        self.assertIsNotNone(self.schedule(config))

    def test_deleting_removes_the_schedule(self):
        config = self.create()
        name = pull_schedule_name(config.pk)
        with self.captureOnCommitCallbacks(execute=True):
            config.delete()
        self.assertFalse(Schedule.objects.filter(name=name).exists())

    def test_setup_schedules_writes_aging_and_repairs_pull_schedules(self):
        config = self.create()
        Schedule.objects.filter(name=pull_schedule_name(config.pk)).delete()
        Schedule.objects.create(name="cte-pull-999999", func=PULL_TASK, args="999999")
        out = StringIO()
        call_command("setup_schedules", stdout=out)
        self.assertIsNotNone(self.schedule(config))
        self.assertFalse(Schedule.objects.filter(name="cte-pull-999999").exists())
        self.assertTrue(Schedule.objects.filter(name=AGING_SCHEDULE, func="exchange.tasks.age").exists())
        self.assertIn("1 pull, 1 aging; 1 stale removed", out.getvalue())

    def test_the_scheduled_task_runs_a_pull_and_respects_the_module_switch(self):
        config = self.create()
        self.assertTrue(tasks.pull(config.pk).startswith("success"))
        self.assertEqual(Run.objects.filter(config=config).count(), 1)
        Settings.objects.update_or_create(pk=1, defaults={"module_enabled": False})
        self.assertIn("module is off", tasks.pull(config.pk))
        self.assertIn("module is off", tasks.age())
        self.assertEqual(Run.objects.count(), 1)

    def test_the_task_of_a_deleted_configuration_is_a_no_op(self):
        self.assertIn("no longer exists", tasks.pull(987654))
