"""Netskope pushes against the local fake tenant over HTTP, through real share runs: URL lists
(create, append, deploy, retraction, invalid entries, caps), the file hash list, rate limits
and refused tokens."""

import time

from django.test import TestCase, override_settings
from django.utils import timezone

from connectors.base import Record
from exchange.ingest import ingest_batch
from exchange.models import Delivery, Indicator, Run, SharingConfig
from exchange.sharing import run_share
from rules.models import BusinessRule
from tests.support.factories import make_config
from tests.support.netskope_fake import HASHLIST, MB, URLLIST, FakeTenant, make_netskope, make_tenant

URLS = [f"http://bad{n}.example/x" for n in range(5)]
MD5 = [f"{n:032x}" for n in range(1, 4)]
SHA256 = [f"{n:064x}" for n in range(1, 3)]


def feed(source, *values, type_=None, **fields):
    ingest_batch(source, [Record(value, type_, **fields) for value in values], timezone.now())


def make_share(name, *, rule, destination, action="url_list", **params) -> SharingConfig:
    config = SharingConfig(name=name, rule=rule, destination=destination, action=action, params=params)
    config.full_clean()
    config.save()
    return config


class NetskopePushTestCase(TestCase):
    fake_options: dict = {}

    def setUp(self):
        self.fake = FakeTenant(**self.fake_options)
        self.fake.__enter__()
        self.addCleanup(self.fake.__exit__, None, None, None)
        self.tenant = make_tenant(self.fake)
        self.netskope = make_netskope(self.tenant, alert_types=[])
        self.source = make_config("feed")
        self.urls = BusinessRule.objects.create(name="urls", expression="type = url")
        self.hashes = BusinessRule.objects.create(name="hashes", expression="type in (md5, sha256)")

    def ledger(self, config) -> dict[str, tuple[str, str]]:
        return {value: (status, error) for value, status, error
                in Delivery.objects.filter(config=config).values_list("value", "status", "last_error")}

    def url_share(self, name="to netskope", **params) -> SharingConfig:
        return make_share(name, rule=self.urls, destination=self.netskope, **{"list_name": "cte-urls", **params})


class UrlListTests(NetskopePushTestCase):
    def test_a_share_creates_the_list_appends_and_deploys_once_and_the_deployed_list_is_the_shared_set(self):
        feed(self.source, *URLS)
        run = run_share(self.url_share().pk)
        self.assertEqual((run.status, run.shared, run.failed), (Run.Status.SUCCESS, 5, 0))
        self.assertEqual(sorted(self.fake.deployed("cte-urls")), URLS)
        self.assertEqual(len(self.fake.hits(URLLIST + "/deploy")), 1)
        self.assertEqual(self.fake.url_list("cte-urls").type, "exact")
        self.assertFalse(self.fake.url_list("cte-urls").pending)

    def test_new_indicators_are_appended_to_the_list_next_to_what_it_held(self):
        self.fake.add_url_list("cte-urls", ["kept.example.org"])
        config = self.url_share()
        feed(self.source, *URLS[:2])
        run_share(config.pk)
        feed(self.source, URLS[2])
        run_share(config.pk)
        appends = self.fake.hits(URLLIST + "/", "PATCH")
        self.assertEqual(len(appends), 2)
        self.assertTrue(all(request.path.endswith("/append") for request in appends))
        self.assertEqual(sorted(self.fake.deployed("cte-urls")), sorted([*URLS[:3], "kept.example.org"]))
        self.assertEqual(len(self.fake.hits(URLLIST + "/deploy")), 2)

    def test_a_run_with_nothing_to_send_does_not_deploy(self):
        feed(self.source, URLS[0])
        config = self.url_share()
        run_share(config.pk)
        run_share(config.pk)
        self.assertEqual(len(self.fake.hits(URLLIST + "/deploy")), 1)

    def test_retraction_replaces_the_list_with_the_remaining_set_and_deploys(self):
        self.fake.add_url_list("cte-urls", ["kept.example.org"])
        config = self.url_share()
        feed(self.source, *URLS[:3])
        run_share(config.pk)
        Indicator.objects.filter(value=URLS[1]).update(active=False)
        run = run_share(config.pk)
        self.assertEqual(run.retracted, 1)
        replaces = [r for r in self.fake.hits(URLLIST + "/", "PATCH") if r.path.endswith("/replace")]
        self.assertEqual(len(replaces), 1)
        self.assertEqual(sorted(self.fake.deployed("cte-urls")), sorted([URLS[0], URLS[2], "kept.example.org"]))
        self.assertEqual(self.ledger(config)[URLS[1]][0], Delivery.Status.RETRACTED)

    def test_invalid_entries_fail_with_the_tenants_reason_and_the_rest_is_sent(self):
        feed(self.source, URLS[0], "http://[2001:db8::1]/payload", URLS[1])
        config = self.url_share()
        run = run_share(config.pk)
        self.assertEqual((run.shared, run.failed), (2, 1))
        status, error = self.ledger(config)["http://[2001:db8::1]/payload"]
        self.assertEqual(status, Delivery.Status.FAILED)
        self.assertIn("refused by tenant acme as invalid: IPv6 address is not supported", error)
        self.assertEqual(sorted(self.fake.deployed("cte-urls")), URLS[:2])
        creates = self.fake.hits(URLLIST, "POST")
        self.assertEqual([request.status for request in creates if request.path == URLLIST], [400, 200])

    def test_a_regex_list_takes_patterns_and_refuses_a_broken_one(self):
        config = make_share("regex", rule=BusinessRule.objects.create(name="all", expression="type = url"),
                            destination=self.netskope, list_name="cte-regex", list_type="regex")
        feed(self.source, "http://bad.example/(a|b)", "http://bad.example/x(")
        run = run_share(config.pk)
        self.assertEqual((run.shared, run.failed), (1, 1))
        self.assertEqual(self.fake.url_list("cte-regex").type, "regex")
        self.assertIn("Invalid regex", self.ledger(config)["http://bad.example/x("][1])

    def test_a_list_that_must_exist_but_does_not_is_a_permanent_error(self):
        feed(self.source, URLS[0])
        config = self.url_share(must_exist=True)
        run = run_share(config.pk)
        config.refresh_from_db()
        self.assertFalse(config.enabled)
        self.assertIn("has no URL list 'cte-urls'", run.error)
        self.assertIsNone(self.fake.url_list("cte-urls"))

    def test_the_max_list_size_parameter_bounds_the_list(self):
        config = self.url_share(max_size=1)
        self.assertEqual(config.get_action().max_bytes, 1 * MB)
        self.assertEqual(self.url_share("default", list_name="other").get_action().max_bytes, 7 * MB)

    def test_a_list_filled_on_the_tenant_takes_only_what_fits(self):
        self.fake.add_url_list("cte-urls", [f"filler{n:07d}.example.org" for n in range(1024 * 1024 // 26)])
        feed(self.source, *URLS)
        config = self.url_share(max_size=1)
        run = run_share(config.pk)
        self.assertEqual((run.shared, run.failed), (1, 4))
        self.assertLessEqual(self.fake.url_list("cte-urls").size, 1 * MB)
        self.assertIn("is full on tenant acme", next(error for _, error in self.ledger(config).values() if error))


class CapTests(NetskopePushTestCase):
    def test_300000_urls_fill_the_7_mb_list_and_the_remainder_stays_pending_with_the_reason(self):
        values = [f"http://malicious-download-{n:06d}.example.net/payload.bin" for n in range(300_000)]
        top = values[-10:]  # the most reputable go first, whatever their order in the feed
        feed(self.source, *values[:-10])
        feed(make_config("trusted", reputation=9), *top)
        started = time.monotonic()
        run = run_share(self.url_share().pk)
        elapsed = time.monotonic() - started
        fits = 7 * MB // (len(values[0]) + 1)
        self.assertEqual((run.status, run.shared, run.pending, run.failed),
                         (Run.Status.SUCCESS, fits, 300_000 - fits, 0))
        deployed = self.fake.deployed("cte-urls")
        self.assertEqual(len(deployed), fits)
        self.assertLessEqual(self.fake.url_list("cte-urls").size, 7 * MB)
        self.assertTrue(set(top) <= set(deployed))
        pending = Delivery.objects.filter(status=Delivery.Status.PENDING)
        self.assertEqual(pending.count(), 300_000 - fits)
        self.assertIn("over the target's capacity", pending.first().last_error)
        self.assertEqual(self.fake.deploys, 1)
        self.assertLess(elapsed, 120)  # mostly the ledger's 300,000 rows; the tenant's part is seconds


class RateLimitTests(NetskopePushTestCase):
    def test_a_429_is_retried_after_the_retry_after_seconds_and_the_run_succeeds(self):
        feed(self.source, *URLS[:2])
        self.fake.throttle(URLLIST, times=1, retry_after=1)
        run = run_share(self.url_share().pk)
        self.assertEqual((run.status, run.shared), (Run.Status.SUCCESS, 2))
        first, second = self.fake.hits(URLLIST)[:2]
        self.assertEqual((first.status, second.status), (429, 200))
        self.assertGreaterEqual(second.at - first.at, 1.0)

    def test_rate_limit_headers_come_with_every_v2_answer_and_a_burst_is_refused(self):
        import requests

        self.fake.rate = 4
        answers = [requests.get(self.fake.url + URLLIST, headers={"Netskope-Api-Token": "v2-token"}, timeout=5)
                   for _ in range(5)]
        self.assertEqual([a.status_code for a in answers], [200, 200, 200, 200, 429])
        self.assertEqual(answers[0].headers["RateLimit-Limit"], "4")
        self.assertEqual(answers[4].json(), {"message": "API rate limit exceeded"})
        self.assertEqual(answers[4].headers["Retry-After"], "1")

    def test_a_refused_token_disables_the_sharing_configuration_and_names_the_token(self):
        feed(self.source, URLS[0])
        self.tenant.token = "revoked"
        self.tenant.save()
        config = self.url_share()
        run = run_share(config.pk)
        config.refresh_from_db()
        self.assertFalse(config.enabled)
        self.assertIn("refused the API v2 token (401 Unauthorized)", run.error)

    def test_a_token_without_the_url_list_scope_names_the_scope(self):
        feed(self.source, URLS[0])
        self.fake.scopes.discard(URLLIST)
        config = self.url_share()
        run = run_share(config.pk)
        config.refresh_from_db()
        self.assertFalse(config.enabled)
        self.assertIn(f"lacks the scope {URLLIST} (read)", run.error)


class FileHashListTests(NetskopePushTestCase):
    def setUp(self):
        super().setUp()
        self.fake.add_hash_list("cte-hashes")

    def hash_share(self, name="hashes to netskope", **params) -> SharingConfig:
        return make_share(name, rule=self.hashes, destination=self.netskope, action="file_hash_list",
                          **{"list_name": "cte-hashes", **params})

    def test_the_list_is_replaced_with_md5_and_sha256_values_only_when_its_content_changed(self):
        feed(self.source, *MD5[:2], *SHA256, URLS[0])
        config = self.hash_share()
        first = run_share(config.pk)
        self.assertEqual((first.status, first.shared), (Run.Status.SUCCESS, 4))
        self.assertEqual(sorted(self.fake.hash_lists["cte-hashes"]), sorted([*MD5[:2], *SHA256]))
        run_share(config.pk)
        self.assertEqual(len(self.fake.hits(HASHLIST)), 1)  # unchanged: no request at all
        feed(self.source, MD5[2])
        run_share(config.pk)
        self.assertEqual(self.fake.hash_replacements["cte-hashes"], 2)
        self.assertEqual(sorted(self.fake.hash_lists["cte-hashes"]), sorted([*MD5, *SHA256]))
        body = self.fake.hits(HASHLIST)[-1].body.decode()
        self.assertIn('"token": "v1-token"', body)  # in the body, not in a URL a proxy logs
        self.assertNotIn("token", self.fake.hits(HASHLIST)[-1].query)

    def test_the_tenants_duplicate_answer_counts_as_success(self):
        feed(self.source, *MD5)
        config = self.hash_share()
        run_share(config.pk)
        Delivery.objects.filter(config=config).delete()  # the ledger lost track: the set is sent again
        run = run_share(config.pk)
        self.assertEqual((run.status, run.shared, run.failed), (Run.Status.SUCCESS, 3, 0))
        self.assertEqual(self.fake.hash_replacements["cte-hashes"], 1)
        self.assertEqual(len(self.fake.hits(HASHLIST)), 2)

    def test_without_a_v1_token_the_configuration_stops_and_says_so(self):
        self.tenant.v1_token = ""
        self.tenant.save()
        feed(self.source, MD5[0])
        config = self.hash_share()
        run = run_share(config.pk)
        self.assertIn("no API v1 token is set; replacing file hash list 'cte-hashes' needs one", run.error)
        self.assertEqual(self.fake.hits(HASHLIST), [])

    def test_a_wrong_v1_token_or_a_missing_list_is_permanent_and_named(self):
        feed(self.source, MD5[0])
        missing = self.hash_share("missing", list_name="nope")
        run = run_share(missing.pk)
        self.assertIn("has no file hash list 'nope'", run.error)
        self.tenant.v1_token = "wrong"
        self.tenant.save()
        config = self.hash_share()
        run = run_share(config.pk)
        config.refresh_from_db()
        self.assertFalse(config.enabled)
        self.assertIn("refused the API v1 token", run.error)

    def test_the_file_hash_action_is_a_full_replace_bounded_at_8_mb(self):
        config = self.hash_share()
        self.assertEqual(config.get_action().max_bytes, 8 * MB)
        self.assertEqual(config.get_action().mode, "replace")


class DeployTests(NetskopePushTestCase):
    @override_settings(CTE_HTTP_RETRIES=0)
    def test_changes_a_failed_run_left_pending_are_deployed_by_the_next_run(self):
        feed(self.source, *URLS[:2])
        config = self.url_share()
        self.fake.fail(URLLIST + "/deploy", times=1, status=503)
        failed = run_share(config.pk)
        self.assertEqual((failed.status, failed.shared), (Run.Status.FAILED, 2))
        self.assertIn("answered 503", failed.error)
        self.assertTrue(self.fake.url_list("cte-urls").pending)
        self.assertIsNone(self.fake.deployed("cte-urls"))
        feed(self.source, URLS[2])
        run_share(config.pk)
        self.assertEqual(sorted(self.fake.deployed("cte-urls")), URLS[:3])
