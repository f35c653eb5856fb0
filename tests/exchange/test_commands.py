"""Management commands: pull, share, backfill, ensure_admin, demo (whose pull works offline)."""

from datetime import timedelta
from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import LiveServerTestCase, TestCase
from django.utils import timezone

from exchange.management.commands.demo import DEMO_CONFIGS
from exchange.models import Indicator, PluginConfig, RejectedRecord, Run, SharingConfig
from tests.support.factories import make_config


def call(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def scripted(name, **settings):
    return make_config(name, connector="scripted", settings={"batches": [["198.51.100.1", "bad"]], "type": "ipv4",
                                                             **settings})


class PullCommandTests(TestCase):
    def test_pull_by_name_reports_the_counters(self):
        scripted("one")
        output = call("pull", "one")
        self.assertIn("one: run #", output)
        self.assertIn("success: 2 received, 1 created, 0 updated, 0 unchanged, 1 rejected", output)

    def test_pull_all_runs_every_enabled_configuration(self):
        scripted("one")
        scripted("two")
        make_config("off", connector="scripted", enabled=False, settings={"batches": []})
        output = call("pull", "--all")
        self.assertIn("one:", output)
        self.assertIn("two:", output)
        self.assertNotIn("off:", output)
        self.assertEqual(Run.objects.count(), 2)

    def test_an_unknown_name_is_an_error_listing_the_known_ones(self):
        scripted("one")
        with self.assertRaisesMessage(CommandError, "no plugin configuration named 'nope' (known: one)"):
            call("pull", "nope")

    def test_a_failed_pull_fails_the_command(self):
        scripted("broken", fail_at=0)
        with self.assertRaisesMessage(CommandError, "pull failed for broken"):
            call("pull", "broken")


class ShareCommandTests(TestCase):
    def setUp(self):
        from connectors.base import Record
        from exchange.ingest import ingest_batch
        from rules.models import BusinessRule

        source = make_config("feed")
        ingest_batch(source, [Record("http://a.example/1"), Record("198.51.100.4")], timezone.now())
        self.destination = make_config("dest", connector="recorder")
        rule = BusinessRule.objects.create(name="urls", expression="type = url")
        for name, enabled in (("one", True), ("two", True), ("off", False)):
            SharingConfig.objects.create(name=name, rule=rule, destination=self.destination, action="add",
                                         params={"list": name}, enabled=enabled)

    def test_share_by_name_reports_the_counters(self):
        output = call("share", "one")
        self.assertIn("one: run #", output)
        self.assertIn("success: 1 selected, 1 shared, 0 failed, 0 retracted, 0 pending", output)

    def test_share_all_runs_every_enabled_configuration(self):
        output = call("share", "--all")
        self.assertIn("one:", output)
        self.assertIn("two:", output)
        self.assertNotIn("off:", output)

    def test_an_unknown_name_lists_the_known_ones(self):
        with self.assertRaisesMessage(CommandError, "no sharing configuration named 'nope' (known: off, one, two)"):
            call("share", "nope")

    def test_a_failed_share_fails_the_command(self):
        self.destination.settings = {"down": "the list service is down"}
        self.destination.save()
        with self.assertRaisesMessage(CommandError, "share failed for one"):
            call("share", "one")


class BackfillCommandTests(TestCase):
    def test_backfill_days_sets_the_checkpoint_back_and_pulls(self):
        config = scripted("one")
        PluginConfig.objects.filter(pk=config.pk).update(last_run=timezone.now(), cursor=3)
        output = call("backfill", "one", "--days", "3")
        run = Run.objects.get()
        self.assertEqual(run.trigger, "backfill")
        self.assertAlmostEqual(run.since, run.started - timedelta(days=3), delta=timedelta(seconds=5))
        self.assertEqual(run.created, 1)  # the cursor was cleared: the pull started from the top
        self.assertIn("pulling everything since", output)

    def test_backfill_initial_uses_the_initial_range(self):
        config = scripted("one")
        PluginConfig.objects.filter(pk=config.pk).update(last_run=timezone.now(), initial_range=30)
        call("backfill", "one", "--initial")
        run = Run.objects.get()
        self.assertAlmostEqual(run.since, run.started - timedelta(days=30), delta=timedelta(seconds=5))

    def test_backfill_needs_days_or_initial(self):
        scripted("one")
        with self.assertRaises(CommandError):
            call("backfill", "one")


class EnsureAdminTests(TestCase):
    def test_the_first_admin_is_created_and_its_password_printed_once(self):
        first = call("ensure_admin")
        self.assertIn("Admin login created: admin / ", first)
        password = first.split("admin / ", 1)[1].split()[0]
        self.assertTrue(get_user_model().objects.get(username="admin").check_password(password))
        self.assertEqual(call("ensure_admin"), "")
        self.assertEqual(get_user_model().objects.count(), 1)


class DemoTests(LiveServerTestCase):
    """The demo configuration pulls from feeds this app serves itself: it works offline."""

    def test_the_demo_loads_and_its_pull_fills_the_store(self):
        call("demo", "--base-url", self.live_server_url)
        call("demo", "--base-url", self.live_server_url)  # safe to run again
        self.assertEqual(PluginConfig.objects.filter(connector="webfeed").count(), len(DEMO_CONFIGS))
        output = call("pull", "--all")
        for demo in DEMO_CONFIGS:
            self.assertIn(f"{demo['name']}: run #", output)
        self.assertEqual(Run.objects.filter(status=Run.Status.SUCCESS).count(), len(DEMO_CONFIGS))
        self.assertGreater(Indicator.objects.count(), 60)
        self.assertEqual(set(Indicator.objects.values_list("type", flat=True)),
                         {"ipv4", "ipv6", "cidr", "sha256", "md5", "sha1", "domain", "url", "email"})
        self.assertTrue(RejectedRecord.objects.filter(reason__startswith="ipv4: 999.10.10.10").exists())
        self.assertTrue(Indicator.objects.filter(value="https://account-verify.example.org/login.php").exists())

    def test_the_demo_shares_to_a_firewall_list_and_a_taxii_collection_it_serves(self):
        import requests

        output = call("demo", "--base-url", self.live_server_url)
        token = output.split("/feeds/edl/demo-urls.txt with the header 'Authorization: Bearer ", 1)[1].split("'")[0]
        call("pull", "--all")
        shared = call("share", "--all")
        self.assertIn("Demo: URLs to a firewall list: run #", shared)
        self.assertIn("Demo: hashes to a TAXII collection: run #", shared)
        answer = requests.get(f"{self.live_server_url}/feeds/edl/demo-urls.txt",
                              headers={"Authorization": f"Bearer {token}"}, timeout=10)
        self.assertEqual(answer.status_code, 200)
        lines = answer.text.splitlines()
        self.assertIn("account-verify.example.org/login.php", lines)
        self.assertNotIn("intranet.example.com/status", lines)  # the seed rule's one exception
        self.assertTrue(Indicator.objects.filter(value="https://intranet.example.com/status").exists())
        self.assertEqual(len(lines), Indicator.objects.filter(type="url", active=True).count() - 1)
        self.assertNotIn("demo: created", call("demo", "--base-url", self.live_server_url))  # kept, not again

    def test_a_missing_demo_file_is_a_404(self):
        import requests

        self.assertEqual(requests.get(f"{self.live_server_url}/demo/feeds/../settings.py").status_code, 404)
        self.assertEqual(requests.get(f"{self.live_server_url}/demo/feeds/nope.txt").status_code, 404)
