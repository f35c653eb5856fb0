"""A bidirectional set-up from end to end, each way one sharing configuration: Netskope alerts ->
a URL rule -> a webhook, and a hash feed -> a hash rule -> the Netskope tenant's file hash list."""

import json
import time

from django.test import TransactionTestCase

from connectors.webfeed import WebFeed
from connectors.webhook import Webhook
from exchange.models import Run, SharingConfig
from exchange.pull import run_pull
from exchange.sharing import run_share
from rules.models import BusinessRule
from tests.support.factories import make_config
from tests.support.httpserver import LocalServer, Reply
from tests.support.netskope_fake import FakeTenant, make_netskope, make_tenant, malsite_alert, malware_alert

NOW = int(time.time())
FEED_HASHES = [f"{n:032x}" for n in range(100, 103)] + [f"{n:064x}" for n in range(100, 102)]


class BidirectionalTests(TransactionTestCase):
    def setUp(self):
        self.fake = FakeTenant(page_size=2)
        self.web = LocalServer()
        for server in (self.fake, self.web):
            server.__enter__()
            self.addCleanup(server.__exit__, None, None, None)
        self.fake.add_hash_list("cte-hashes")
        self.fake.add_alerts("malsite", *(malsite_alert(NOW - 300 + n, n) for n in range(1, 4)))
        # Netskope also saw the feed's first hash: it must not go back to the tenant it came from.
        self.fake.add_alerts("malware", malware_alert(NOW - 200, 7), malware_alert(NOW - 100, 100))
        self.web.route("/hashes.txt", Reply(200, "# hashes\n" + "\n".join(FEED_HASHES) + "\n"))
        self.web.route("/hook", Reply(200, '{"ok": true}'))

    def configure(self):
        netskope = make_netskope(make_tenant(self.fake))
        feed = make_config("hash feed", settings=WebFeed.clean_settings(
            {"preset": "plain_list", "url": self.web.url("/hashes.txt"), "format": "text",
             "indicator_type": "detect", "severity": "unknown"}))
        webhook = make_config("soar", connector="webhook",
                              settings=Webhook.clean_settings({"url": self.web.url("/hook")}))
        urls = BusinessRule.objects.create(name="urls", expression="type = url")
        hashes = BusinessRule.objects.create(name="hashes", expression="type in (md5, sha256)")
        out = SharingConfig(name="netskope urls to soar", source=netskope, rule=urls, destination=webhook,
                            action="send", params={})
        back = SharingConfig(name="feed hashes to netskope", source=feed, rule=hashes, destination=netskope,
                             action="file_hash_list", params={"list_name": "cte-hashes"})
        for config in (out, back):
            config.full_clean()
            config.save()
        return netskope, feed, out, back

    def test_alerts_reach_the_webhook_and_the_feed_reaches_the_file_hash_list_each_one_way(self):
        netskope, feed, out, back = self.configure()
        for config in (netskope, feed):
            self.assertEqual(run_pull(config.pk).status, Run.Status.SUCCESS)
        for config in (out, back):
            run = run_share(config.pk)
            self.assertEqual((run.status, run.error), (Run.Status.SUCCESS, ""))

        sent = [item for seen in self.web.hits("/hook") for item in json.loads(seen.body)["indicators"]]
        self.assertEqual(sorted(item["value"] for item in sent),
                         [f"http://bad{n}.example/landing" for n in range(1, 4)])
        self.assertTrue(all("Netskope tenant acme" in item["comments"] for item in sent))

        # The feed's hashes, less those the tenant itself reported; none of the alerts' own hashes.
        reported_by_netskope = {f"{100:032x}", f"{100:064x}"}
        self.assertEqual(sorted(self.fake.hash_lists["cte-hashes"]),
                         sorted(value for value in FEED_HASHES if value not in reported_by_netskope))
        self.assertIsNone(self.fake.url_list("cte-urls"))
        self.assertEqual(self.fake.hits("/api/v2/policy/urllist"), [])
