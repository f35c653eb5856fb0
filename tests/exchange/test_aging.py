"""The aging sweep: expiry, re-activation, deletion after N days."""

from datetime import timedelta

from django.core.management import call_command
from django.test import TestCase
from django.utils import timezone

from connectors.base import Record
from exchange.aging import run_aging
from exchange.ingest import ingest_batch
from exchange.models import Indicator, Run, Settings, Sighting
from exchange.pull import Skipped
from tests.support.factories import make_config


class AgingTests(TestCase):
    def setUp(self):
        self.now = timezone.now()
        self.feed = make_config("feed", aging_days=10)
        self.forever = make_config("forever", aging_days=0)

    def seen(self, config, value, days_ago):
        ingest_batch(config, [Record(value, "ipv4", last_seen=self.now - timedelta(days=days_ago))], self.now)

    def test_the_sweep_marks_expired_indicators_inactive_and_only_those(self):
        self.seen(self.feed, "198.51.100.1", 11)  # expired a day ago
        self.seen(self.feed, "198.51.100.2", 9)  # a day left
        self.seen(self.forever, "198.51.100.3", 400)  # never expires
        Indicator.objects.update(active=True)  # as if the merge had run before they expired
        run = run_aging()
        self.assertEqual((run.status, run.deactivated, run.deleted), (Run.Status.SUCCESS, 1, 0))
        self.assertEqual(dict(Indicator.objects.values_list("value", "active")),
                         {"198.51.100.1": False, "198.51.100.2": True, "198.51.100.3": True})

    def test_a_new_sighting_reactivates_a_swept_indicator(self):
        self.seen(self.feed, "198.51.100.1", 11)
        run_aging()
        self.assertFalse(Indicator.objects.get().active)
        self.seen(self.feed, "198.51.100.1", 0)
        indicator = Indicator.objects.get()
        self.assertTrue(indicator.active)
        self.assertGreater(indicator.expires_at, self.now)

    def test_inactive_indicators_are_deleted_after_the_configured_days_with_their_sightings(self):
        Settings.objects.update_or_create(pk=1, defaults={"delete_inactive_after": 30})
        self.seen(self.feed, "198.51.100.1", 50)  # inactive for 40 days
        self.seen(self.feed, "198.51.100.2", 20)  # inactive for 10 days
        self.seen(self.feed, "198.51.100.3", 1)  # active
        run = run_aging()
        self.assertEqual(run.deleted, 1)
        self.assertEqual(sorted(Indicator.objects.values_list("value", flat=True)), ["198.51.100.2", "198.51.100.3"])
        self.assertEqual(Sighting.objects.count(), 2)

    def test_zero_days_keeps_inactive_indicators(self):
        self.seen(self.feed, "198.51.100.1", 500)
        self.assertEqual(run_aging().deleted, 0)
        self.assertEqual(Indicator.objects.count(), 1)

    def test_deletion_works_in_chunks(self):
        Settings.objects.update_or_create(pk=1, defaults={"delete_inactive_after": 1})
        ingest_batch(self.feed, [Record(f"10.0.{i // 256}.{i % 256}", "ipv4", last_seen=self.now - timedelta(days=20))
                                 for i in range(1200)], self.now)
        with self.settings():
            from exchange import aging

            chunk, aging.DELETE_CHUNK = aging.DELETE_CHUNK, 500
            try:
                self.assertEqual(run_aging().deleted, 1200)
            finally:
                aging.DELETE_CHUNK = chunk
        self.assertFalse(Indicator.objects.exists())

    def test_module_off_means_no_aging(self):
        Settings.objects.update_or_create(pk=1, defaults={"module_enabled": False})
        with self.assertRaisesMessage(Skipped, "module is off"):
            run_aging()

    def test_the_age_command_reports_what_it_did(self):
        self.seen(self.feed, "198.51.100.1", 11)
        Indicator.objects.update(active=True)
        from io import StringIO

        out = StringIO()
        call_command("age", stdout=out)
        self.assertIn("1 indicators expired, 0 deleted", out.getvalue())
