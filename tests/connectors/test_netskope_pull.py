"""Netskope pull against the local fake tenant over HTTP: alerts to indicators across iterator
pages, checkpoints, wait_time, the alert types and filter, errors, and resume after a kill."""

import time
from datetime import UTC, datetime, timedelta

from django.test import TestCase, TransactionTestCase
from django.utils import timezone

from connectors.base import Context
from connectors.http import new_session
from exchange.models import Indicator, PluginConfig, RejectedRecord, Run, Sighting
from exchange.pull import run_pull
from tests.support.netskope_fake import (
    ALERTS,
    FakeTenant,
    make_netskope,
    make_tenant,
    malsite_alert,
    malware_alert,
)
from tests.support.processes import kill_pull_when

NOW = int(time.time())


def store() -> list[tuple[str, str]]:
    return sorted(Indicator.objects.values_list("type", "value"))


def hits() -> list[tuple[str, int]]:
    return sorted(Sighting.objects.values_list("indicator__value", "hits"))


def operations(fake: FakeTenant, alert_type: str) -> list[str]:
    return [request.query["operation"] for request in fake.hits(ALERTS + alert_type)]


def expected(malware: range, malsite: range) -> list[tuple[str, str]]:
    values = [("md5", f"{n:032x}") for n in malware] + [("sha256", f"{n:064x}") for n in malware]
    values += [("url", f"http://bad{n}.example/landing") for n in malsite]
    values += [("hostname", f"bad{n}.example") for n in malsite]
    return sorted(values)


class FakeTenantTestCase(TransactionTestCase):
    """Pull runs read in a second thread, which sees only committed rows: hence transactions."""

    page_size = 3

    def setUp(self):
        self.fake = FakeTenant(page_size=self.page_size)
        self.fake.__enter__()
        self.addCleanup(self.fake.__exit__, None, None, None)
        self.tenant = make_tenant(self.fake)
        self.config = make_netskope(self.tenant)

    def add(self, malware: range = range(0), malsite: range = range(0), at: int = NOW - 3600) -> None:
        self.fake.add_alerts("malware", *(malware_alert(at + n, n) for n in malware))
        self.fake.add_alerts("malsite", *(malsite_alert(at + n, n) for n in malsite))


class PullTests(FakeTenantTestCase):
    def test_hashes_come_from_malware_alerts_and_urls_and_hosts_from_malsite_alerts_across_pages(self):
        self.add(malware=range(1, 8), malsite=range(1, 6))
        run = run_pull(self.config.pk)
        self.assertEqual((run.status, run.error), (Run.Status.SUCCESS, ""))
        self.assertEqual(store(), expected(range(1, 8), range(1, 6)))
        self.assertNotIn("laptop-17", [value for _, value in store()])  # the user's device is not an indicator
        # 7 alerts in pages of 3: 3, 3, 1 (caught up); 5: 3, 2.
        self.assertEqual(len(operations(self.fake, "malware")), 3)
        self.assertEqual(len(operations(self.fake, "malsite")), 2)
        self.assertEqual(run.received, 7 * 2 + 5 * 2)

    def test_alert_details_become_indicator_metadata_with_the_tenant_name(self):
        self.add(malware=range(1, 2), malsite=range(1, 2))
        self.fake.add_alerts("malware", malware_alert(NOW - 60, 9, severity="informational"))
        run_pull(self.config.pk)
        md5 = Indicator.objects.get(value=f"{1:032x}")
        self.assertEqual(md5.severity, "high")
        self.assertIn("Netskope tenant acme", md5.comments)
        self.assertIn("Trojan.Gen.1", md5.comments)
        self.assertEqual(md5.first_seen, datetime.fromtimestamp(NOW - 3600 + 1, UTC))
        self.assertEqual(Indicator.objects.get(value=f"{9:032x}").severity, "unknown")  # not a known value
        url = Indicator.objects.get(value="http://bad1.example/landing")
        self.assertEqual((url.severity, url.tags), ("medium", ["Phishing"]))
        self.assertIn("Netskope tenant acme", url.comments)

    def test_one_iterator_index_per_configuration_kept_across_pulls(self):
        self.add(malware=range(1, 3))
        run_pull(self.config.pk)
        other = make_netskope(self.tenant, name="second")
        run_pull(other.pk)
        run_pull(self.config.pk)
        self.config.refresh_from_db()
        other.refresh_from_db()
        mine = {request.query["index"] for request in self.fake.hits(ALERTS) if request.query["index"]
                == self.config.storage["index"]}
        self.assertEqual(len(mine), 1)
        self.assertNotEqual(self.config.storage["index"], other.storage["index"])
        indexes = {request.query["index"] for request in self.fake.hits(ALERTS)}
        self.assertEqual(indexes, {self.config.storage["index"], other.storage["index"]})

    def test_the_first_pull_starts_at_the_initial_range_and_the_next_at_the_last_run(self):
        self.add(malware=range(1, 3), at=NOW - 20 * 86400)  # older than the initial range
        self.add(malware=range(3, 5), at=NOW - 3600)
        run = run_pull(self.config.pk)
        first = int(operations(self.fake, "malware")[0])
        self.assertAlmostEqual(first, (run.started - timedelta(days=14)).timestamp(), delta=2)
        self.assertEqual(store(), expected(range(3, 5), range(0)))
        self.fake.requests.clear()
        second = run_pull(self.config.pk)
        self.assertEqual(operations(self.fake, "malware")[0], str(int(run.started.timestamp())))
        self.assertEqual(second.received, 0)

    def test_a_page_with_wait_time_ends_the_pull_until_the_next_run(self):
        self.add(malware=range(1, 3))  # 2 alerts: one short page, wait_time 30
        run_pull(self.config.pk)
        self.assertEqual(len(operations(self.fake, "malware")), 1)
        self.assertEqual(len(store()), 4)

    def test_the_configuration_picks_the_types_within_the_tenants_alerts_filter(self):
        self.add(malware=range(1, 3), malsite=range(1, 3))
        only_malsite = make_netskope(self.tenant, name="urls only", alert_types=["malsite"])
        run_pull(only_malsite.pk)
        self.assertEqual(operations(self.fake, "malware"), [])
        self.assertEqual(store(), expected(range(0), range(1, 3)))
        self.tenant.alert_types = ["malware"]
        self.tenant.save()
        run = run_pull(only_malsite.pk)
        self.assertEqual(run.status, Run.Status.FAILED)
        self.assertIn("alerts filter allows malware; this configuration pulls malsite", run.error)

    def test_the_tenants_alert_query_filters_alerts(self):
        self.fake.add_alerts("malsite", malsite_alert(NOW - 50, 1), malsite_alert(NOW - 40, 2, severity="low"),
                             malsite_alert(NOW - 30, 3, malsite_category=["Malware", "Botnet"]))
        self.tenant.alert_query = "severity ne 'low' and malsite_category like 'bot'"
        self.tenant.save()
        run_pull(self.config.pk)
        self.assertEqual(store(), expected(range(0), range(3, 4)))

    def test_an_alert_without_an_indicator_is_rejected_with_the_reason_and_the_rest_goes_on(self):
        self.fake.add_alerts("malware", malware_alert(NOW - 50, 1, md5=None, sha256=None))
        self.fake.add_alerts("malware", malware_alert(NOW - 40, 2, md5=None, local_md5="ab" * 16))
        run = run_pull(self.config.pk)
        self.assertEqual(run.rejected, 1)
        self.assertIn("without md5 or sha256", RejectedRecord.objects.get().reason)
        self.assertEqual(store(), [("md5", "ab" * 16), ("sha256", f"{2:064x}")])

    def test_a_refused_token_disables_the_configuration_and_names_the_token(self):
        self.tenant.token = "expired"
        self.tenant.save()
        run = run_pull(self.config.pk)
        self.config.refresh_from_db()
        self.assertFalse(self.config.enabled)
        self.assertIn("refused the API v2 token (401 Unauthorized)", run.error)

    def test_a_token_without_the_alerts_scope_disables_the_configuration_and_names_the_scope(self):
        self.fake.scopes.discard(ALERTS + "malsite")
        run = run_pull(self.config.pk)
        self.config.refresh_from_db()
        self.assertFalse(self.config.enabled)
        self.assertIn(f"lacks the scope {ALERTS}malsite (read)", run.error)


class ResumeTests(FakeTenantTestCase):
    def test_a_pull_failing_half_way_resumes_from_its_mark_without_loss_or_double_counting(self):
        self.add(malware=range(1, 11))  # pages of 3
        calls = {"n": 0}
        original = self.fake.answer

        def third_page_breaks(request, headers):
            calls["n"] += 1
            if calls["n"] == 3:
                return 400, {}, {"ok": 0, "message": "iterator unavailable"}
            return original(request, headers)

        self.fake.answer = third_page_breaks
        failed = run_pull(self.config.pk)
        self.assertEqual(failed.status, Run.Status.FAILED)
        self.assertIn("iterator unavailable", failed.error)
        self.config.refresh_from_db()
        self.assertEqual(self.config.cursor["malware"]["epoch"], NOW - 3600 + 6)
        self.assertEqual(len(store()), 12)  # two pages committed
        self.fake.answer = original
        resumed = run_pull(self.config.pk)
        self.assertEqual(resumed.status, Run.Status.SUCCESS)
        self.assertEqual(operations(self.fake, "malware")[3], str(NOW - 3600 + 6))  # restarted at the mark
        self.assertEqual(store(), expected(range(1, 11), range(0)))
        self.assertEqual({count for _, count in hits()}, {1})

    def test_a_killed_pull_resumes_without_loss_or_double_counting(self):
        self.add(malware=range(1, 31), malsite=range(1, 10))
        self.fake.delay = 0.25
        def two_pages_kept():
            self.config.refresh_from_db()
            return bool(self.config.cursor and self.config.cursor.get("malware", {}).get("epoch", 0) >= NOW - 3600 + 6)

        kill_pull_when(self.config.name, two_pages_kept, poll=0.02)
        self.config.refresh_from_db()
        self.assertIsNone(self.config.last_run)
        fetched = len(self.fake.hits(ALERTS + "malware"))
        committed = Indicator.objects.count() // 2
        self.assertGreater(fetched * 3, committed)  # the tenant's index had moved past what was kept
        self.fake.delay = 0
        resumed = run_pull(self.config.pk)
        self.assertEqual(resumed.status, Run.Status.SUCCESS)
        self.assertEqual(store(), expected(range(1, 31), range(1, 10)))
        self.assertEqual({count for _, count in hits()}, {1})  # nothing merged twice
        self.assertEqual(Run.objects.filter(config=self.config, status=Run.Status.FAILED).count(), 1)


class RetryTests(TestCase):
    """Direct pulls with a test-sized backoff: 429 and 5xx are retried, not fatal."""

    def test_occasional_5xx_and_429_are_retried_and_nothing_is_lost(self):
        with FakeTenant(page_size=5, error_rate=0.25, seed=3) as fake:
            fake.add_alerts("malware", *(malware_alert(NOW - 500 + n, n) for n in range(40)))
            fake.throttle(ALERTS + "malware", times=2, retry_after=0)
            config = make_netskope(make_tenant(fake), alert_types=["malware"])
            ctx = Context(config=config, settings=dict(config.settings), secrets={}, storage={},
                          session=new_session(retries=8, backoff=0.01, backoff_max=0.05),
                          since=timezone.now() - timedelta(days=1))
            records = [record for batch in config.get_connector().pull(ctx) for record in batch.records]
        self.assertEqual(len(records), 80)
        statuses = [request.status for request in fake.requests]
        self.assertIn(503, statuses)
        self.assertEqual(statuses.count(429), 2)
        self.assertFalse(PluginConfig.objects.get(pk=config.pk).last_error)
