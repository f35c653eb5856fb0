"""The MISP REST connector's pull and "Test connection", through the real pull pipeline, against a
local fake of the MISP REST API (tests/support/misp_fake.py) over real HTTP."""

import time

from django.contrib.auth import get_user_model
from django.test import TestCase, TransactionTestCase, override_settings
from django.urls import reverse

from connectors.base import ConnectorError, Context
from connectors.http import session_for
from connectors.misp.api import Misp
from connectors.misp.mapping import CTE_TYPES
from exchange.models import Indicator, PluginConfig, RejectedRecord, Run, Sighting
from exchange.pull import run_pull
from tests.support.factories import make_config
from tests.support.httpserver import LocalServer, Reply
from tests.support.misp_fake import FakeMisp, Role
from tests.support.processes import kill_pull_when

KEY = "fake-misp-key"


def recent(hours: float = 1) -> int:
    return int(time.time() - hours * 3600)


def misp_config(misp: FakeMisp, name: str = "misp", key: str = KEY, **values) -> PluginConfig:
    """A configuration saved as the admin saves it: the form's cleaned data, the key apart."""
    cleaned = Misp.clean_settings({"url": misp.base_url, "types": list(CTE_TYPES), **values})
    cleaned.pop("api_key")
    return make_config(name=name, connector="misp", settings=cleaned, secrets={"api_key": key} if key else None)


def analyst_event(misp: FakeMisp, stamp: int | None = None) -> dict:
    """An event as an analyst makes one: indicators, context, an object, an unflagged and a deleted attribute."""
    stamp = stamp or recent()
    return misp.add_event("Phishing campaign against finance teams", tags=["tlp:white"], threat_level_id=1,
                          timestamp=stamp, attributes=[
        {"type": "url", "value": "https://login-micros0ft.example/owa/", "comment": "landing page",
         "Tag": [{"name": "kill-chain:delivery"}]},
        {"type": "domain", "value": "login-micros0ft.example"},
        {"type": "ip-dst|port", "value": "192.0.2.44|8443"},
        {"type": "domain|ip", "value": "cdn.badstatic.example|198.51.100.77"},
        {"type": "ip-src", "value": "2001:db8::17"},
        {"type": "sha256", "value": "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"},
        {"type": "text", "value": "the actor reuses the same kit", "category": "Other"},
        {"type": "domain", "value": "registrar-context.example", "to_ids": False},
        {"type": "url", "value": "http://removed.example/old", "deleted": True},
        {"type": "ip-dst", "value": "999.1.1.1"},
    ], objects=[{"name": "domain-ip", "Attribute": [
        {"type": "domain", "value": "update-check.example", "object_relation": "domain"},
        {"type": "ip-dst", "value": "198.51.100.99", "object_relation": "ip"},
    ]}])


EXPECTED = {
    "https://login-micros0ft.example/owa/": "url", "login-micros0ft.example": "domain", "192.0.2.44": "ipv4",
    "cdn.badstatic.example": "domain", "198.51.100.77": "ipv4", "2001:db8::17": "ipv6",
    "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f": "sha256",
    "update-check.example": "domain", "198.51.100.99": "ipv4",
}


class MispTestCase(TestCase):
    numbers = "string"

    def setUp(self):
        self.misp = FakeMisp(KEY, numbers=self.numbers)
        self.misp.__enter__()
        self.addCleanup(self.misp.__exit__, None, None, None)

    def pull(self, config: PluginConfig) -> Run:
        with self.assertLogs("cte", "INFO"):
            return run_pull(config.pk, trigger="manual")

    def values(self) -> dict[str, str]:
        return dict(Indicator.objects.values_list("value", "type"))

    def validate(self, config: PluginConfig) -> str:
        ctx = Context(config=config, settings=dict(config.settings), secrets=config.get_secrets(),
                      session=session_for(config), since=config.last_run)
        return config.get_connector().validate(ctx)


class PullTests(MispTestCase):
    def test_a_pull_brings_the_ids_attributes_of_events_and_objects_with_their_metadata(self):
        event = analyst_event(self.misp)
        config = misp_config(self.misp)

        run = self.pull(config)

        self.assertEqual(run.status, Run.Status.SUCCESS, run.error)
        self.assertEqual(self.values(), EXPECTED)
        self.assertEqual((run.received, run.created, run.rejected), (10, 9, 1))
        self.assertEqual(list(RejectedRecord.objects.filter(run=run).values_list("value", "reason")), [
            ("999.1.1.1", f"ipv4: 999.1.1.1 is not an IPv4 address (MISP ip-dst attribute "
                          f"{self.misp.attributes()[9]['uuid']})")])
        landing = Indicator.objects.get(type="url")
        self.assertEqual(landing.tags, ["kill-chain:delivery", "tlp:white"])
        self.assertEqual(landing.comments, "Phishing campaign against finance teams; landing page")
        sighting = Sighting.objects.get(indicator=landing, source=config)
        self.assertEqual(sighting.external_id, self.misp.attributes(event["id"])[0]["uuid"])
        self.assertEqual(int(sighting.last_seen.timestamp()), event["timestamp"])

        [search] = self.misp.searches()
        self.assertEqual(search["returnFormat"], "json")
        self.assertEqual((search["to_ids"], search["tags"], search["includeEventTags"]), (True, ["!cte:shared"], True))
        self.assertEqual((search["limit"], search["page"]), (1000, 1))
        self.assertIn("domain|ip", search["type"])
        self.assertNotIn("text", search["type"])
        self.assertEqual(search["timestamp"][0], int(run.since.timestamp()))
        self.assertGreaterEqual(search["timestamp"][1], int(run.started.timestamp()))
        config.refresh_from_db()
        self.assertIsNone(config.cursor)
        self.assertEqual(config.last_run, run.started)

    def test_attributes_outside_the_window_are_not_asked_for(self):
        analyst_event(self.misp, stamp=recent(hours=24 * 30))  # older than the 14-day initial range
        run = self.pull(misp_config(self.misp))
        self.assertEqual((run.status, run.received), (Run.Status.SUCCESS, 0))

    def test_the_next_pull_asks_from_the_checkpoint(self):
        config = misp_config(self.misp)
        first = self.pull(config)
        self.pull(config)
        self.assertEqual(self.misp.searches()[1]["timestamp"][0], int(first.started.timestamp()))

    def test_attributes_not_flagged_for_ids_come_when_the_configuration_asks(self):
        analyst_event(self.misp)
        run = self.pull(misp_config(self.misp, include_non_ids=True))
        self.assertNotIn("to_ids", self.misp.searches()[0])
        self.assertEqual(self.values()["registrar-context.example"], "domain")
        self.assertEqual(run.created, 10)
        self.assertNotIn("removed.example", str(self.values()))  # deleted stays out

    def test_only_the_chosen_types_are_asked_for_and_kept(self):
        analyst_event(self.misp)
        self.pull(misp_config(self.misp, types=["sha256", "ipv6"]))
        self.assertEqual(self.misp.searches()[0]["type"],
                         ["domain|ip", "filename|sha256", "ip-dst", "ip-dst|port", "ip-src", "ip-src|port", "sha256"])
        self.assertEqual(self.values(), {"2001:db8::17": "ipv6",
                                         "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f": "sha256"})

    def test_published_only_asks_misp_for_published_events(self):
        self.misp.add_event("draft", published=False, timestamp=recent(),
                            attributes=[{"type": "domain", "value": "draft.example"}])
        analyst_event(self.misp)
        self.pull(misp_config(self.misp, published_only=True))
        self.assertIs(self.misp.searches()[0]["published"], True)
        self.assertNotIn("draft.example", self.values())
        self.assertIn("login-micros0ft.example", self.values())


class NumbersAsIntegersTests(MispTestCase):
    numbers = "int"

    def test_ids_timestamps_and_flags_as_integers_read_the_same(self):
        event = analyst_event(self.misp)
        run = self.pull(misp_config(self.misp))
        self.assertEqual(run.status, Run.Status.SUCCESS, run.error)
        self.assertEqual(self.values(), EXPECTED)
        landing = Sighting.objects.get(indicator__type="url")
        self.assertEqual(int(landing.last_seen.timestamp()), event["timestamp"])


class PagingTests(MispTestCase):
    def seed(self, count: int) -> None:
        self.misp.add_event("many", timestamp=recent(), attributes=[
            {"type": "domain", "value": f"host{number}.evil.example"} for number in range(count)])

    def test_pages_follow_until_one_is_short(self):
        self.seed(8)
        run = self.pull(misp_config(self.misp, page_size=3))
        self.assertEqual([(s["page"], s["limit"]) for s in self.misp.searches()], [(1, 3), (2, 3), (3, 3)])
        self.assertEqual((run.received, run.created, run.batches), (8, 8, 3))

    def test_a_full_last_page_costs_one_empty_page(self):
        self.seed(6)
        run = self.pull(misp_config(self.misp, page_size=3))
        self.assertEqual([s["page"] for s in self.misp.searches()], [1, 2, 3])
        self.assertEqual(run.created, 6)

    @override_settings(CTE_HTTP_RETRIES=0)
    def test_a_failure_half_way_resumes_at_the_page_with_the_same_question_then_reads_on(self):
        self.seed(8)
        config = misp_config(self.misp, page_size=3)
        self.misp.fail("/attributes/restSearch", 500, page=2)

        failed = self.pull(config)

        self.assertEqual(failed.status, Run.Status.FAILED)
        self.assertIn("answered 500", failed.error)
        config.refresh_from_db()
        self.assertTrue(config.enabled)
        self.assertEqual(config.cursor["page"], 2)
        self.assertEqual(Indicator.objects.count(), 3)
        window = self.misp.searches()[0]["timestamp"]
        # Something changes in MISP after the failed run's window closed.
        time.sleep(1.1)
        self.misp.add_event("later", timestamp=int(time.time()),
                            attributes=[{"type": "domain", "value": "later.evil.example"}])

        resumed = self.pull(config)

        self.assertEqual(resumed.status, Run.Status.SUCCESS, resumed.error)
        searches = [(s["page"], s["timestamp"]) for s in self.misp.searches()[2:]]
        self.assertEqual(searches[:2], [(2, window), (3, window)])  # the same question, from page 2
        self.assertEqual(searches[2][0], 1)
        self.assertEqual(searches[2][1][0], window[1])  # then on from where that window closed
        self.assertGreaterEqual(searches[2][1][1], int(resumed.started.timestamp()))
        self.assertEqual((resumed.received, resumed.created), (6, 6))
        self.assertEqual(Indicator.objects.count(), 9)
        self.assertEqual(set(Sighting.objects.values_list("hits", flat=True)), {1})
        config.refresh_from_db()
        self.assertIsNone(config.cursor)

    def test_a_cursor_for_other_filters_is_not_resumed(self):
        self.seed(4)
        config = misp_config(self.misp, page_size=3)
        PluginConfig.objects.filter(pk=config.pk).update(cursor={"since": 1, "from": 1, "to": 2, "page": 7,
                                                                 "filter": "other"})
        run = self.pull(config)
        self.assertEqual(self.misp.searches()[0]["page"], 1)
        self.assertEqual(run.created, 4)


class RefusalTests(MispTestCase):
    def test_a_wrong_api_key_disables_the_configuration_and_says_so(self):
        config = misp_config(self.misp, key="not-the-key")
        run = self.pull(config)
        config.refresh_from_db()
        self.assertEqual(run.status, Run.Status.FAILED)
        self.assertIn("MISP refused the API key", run.error)
        self.assertIn("Authentication failed", run.error)
        self.assertFalse(config.enabled)

    def test_a_missing_api_key_is_named(self):
        run = self.pull(misp_config(self.misp, key=""))
        self.assertIn("no API key is set", run.error)

    def test_a_role_without_searches_is_refused_for_good(self):
        self.misp.role = Role(enforce_rate_limit=True, rate_limit_count=0)
        config = misp_config(self.misp)
        run = self.pull(config)
        self.assertIn("API searches are not allowed for this user role", run.error)
        config.refresh_from_db()
        self.assertFalse(config.enabled)

    def test_a_rate_limited_search_is_retried_after_the_window_resets(self):
        self.misp.role = Role(enforce_rate_limit=True, rate_limit_count=1, window=1.0)
        self.misp.add_event("many", timestamp=recent(), attributes=[
            {"type": "domain", "value": f"host{number}.evil.example"} for number in range(3)])
        run = self.pull(misp_config(self.misp, page_size=2))
        self.assertEqual(run.status, Run.Status.SUCCESS, run.error)
        self.assertEqual(run.created, 3)
        self.assertGreater(len(self.misp.searches()), 2)  # the refused tries were sent again

    @override_settings(CTE_HTTP_RETRIES=0)
    def test_a_rate_limit_that_outlasts_the_retries_fails_the_run_and_keeps_the_configuration(self):
        self.misp.role = Role(enforce_rate_limit=True, rate_limit_count=1, window=900)
        self.misp.add_event("many", timestamp=recent(), attributes=[
            {"type": "domain", "value": f"host{number}.evil.example"} for number in range(3)])
        config = misp_config(self.misp, page_size=2)
        run = self.pull(config)
        self.assertEqual(run.status, Run.Status.FAILED)
        self.assertIn("rate limit is used up", run.error)
        self.assertIn("1 searches per window, the window resets in", run.error)
        config.refresh_from_db()
        self.assertTrue(config.enabled)
        self.assertEqual(config.cursor["page"], 2)


class ValidateTests(MispTestCase):
    def test_test_connection_reports_version_key_search_and_tag(self):
        analyst_event(self.misp)
        message = self.validate(misp_config(self.misp))
        self.assertEqual(message, f"MISP {FakeMisp.VERSION} at {self.misp.base_url}: the API key works; the search "
                                  "finds attributes to pull from the last 14 days; the loop-prevention tag "
                                  "'cte:shared' will be created by the first share (tag editor permission)")

    def test_test_connection_on_an_empty_misp_with_the_tag(self):
        self.misp.state.tags["cte:shared"] = {"id": 7, "name": "cte:shared", "colour": "#0b6e99"}
        message = self.validate(misp_config(self.misp))
        self.assertIn("the search finds no attribute yet to pull", message)
        self.assertTrue(message.endswith("the loop-prevention tag 'cte:shared' exists"))

    def test_test_connection_names_a_wrong_key(self):
        with self.assertRaises(ConnectorError) as caught:
            self.validate(misp_config(self.misp, key="wrong"))
        self.assertTrue(caught.exception.permanent)
        self.assertIn("MISP refused the API key", str(caught.exception))

    def test_test_connection_names_an_address_that_is_not_misp(self):
        with LocalServer() as other:
            other.route("/servers/getVersion", Reply(200, "<html>welcome</html>"))
            config = misp_config(self.misp)
            config.settings["url"] = other.base_url
            with self.assertRaises(ConnectorError) as caught:
                self.validate(config)
        self.assertIn("is not JSON", str(caught.exception))
        self.assertIn("is " + other.base_url + " MISP's address?", str(caught.exception))

    def test_test_connection_names_a_url_where_nothing_answers_misp_s_api(self):
        with LocalServer() as other:
            config = misp_config(self.misp)
            config.settings["url"] = other.base_url + "/misp"
            with self.assertRaises(ConnectorError) as caught:
                self.validate(config)
        self.assertIn("answered 404", str(caught.exception))
        self.assertIn("check that the URL is MISP's base address", str(caught.exception))


class KilledPullTests(TransactionTestCase):
    """A MISP pull killed with SIGKILL in the middle resumes after its last committed page."""

    def test_a_killed_pull_resumes_without_loss_or_double_counting(self):
        with FakeMisp(KEY) as misp:
            misp.add_event("many", timestamp=recent(), attributes=[
                {"type": "domain", "value": f"host{number}.evil.example"} for number in range(10)])
            config = misp_config(misp, page_size=2)
            misp.pause = 0.4
            def three_pages_read():
                config.refresh_from_db()
                return bool(config.cursor and config.cursor["page"] >= 3)

            kill_pull_when(config.name, three_pages_read)

            config.refresh_from_db()
            committed = (config.cursor["page"] - 1) * 2
            self.assertEqual(Indicator.objects.count(), committed)
            misp.pause = 0
            resumed = run_pull(config.pk)

        self.assertEqual(resumed.status, Run.Status.SUCCESS, resumed.error)
        self.assertEqual(resumed.received, 10 - committed)
        self.assertEqual(Indicator.objects.count(), 10)
        self.assertEqual(set(Sighting.objects.values_list("hits", flat=True)), {1})


class AdminTests(TestCase):
    def setUp(self):
        user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
        self.client.force_login(user)

    def post(self, connector: str, **fields) -> PluginConfig:
        url = reverse("admin:exchange_pluginconfig_add") + f"?connector={connector}"
        page = self.client.get(url)
        self.assertContains(page, 'name="cfg_types"')
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(url, {
                "name": connector, "enabled": "on", "sync_interval": 60, "initial_range": 14, "aging_days": 90,
                "reputation": 5, "ssl_verify": "unknown", **fields})
        self.assertEqual(response.status_code, 302, response.content.decode()[:3000])
        return PluginConfig.objects.get(name=connector)

    def test_a_misp_instance_is_configured_in_the_admin_with_its_key_kept_apart(self):
        config = self.post("misp", cfg_url="https://misp.example.org", cfg_api_key="s3cr3t-misp-key",
                           cfg_types=["md5", "sha256"])
        self.assertEqual(config.settings, {
            "url": "https://misp.example.org", "types": ["md5", "sha256"], "include_non_ids": False,
            "published_only": False, "loop_tag": "cte:shared", "page_size": 1000, "batch_size": 2500})
        self.assertEqual(config.get_secrets(), {"api_key": "s3cr3t-misp-key"})
        page = self.client.get(reverse("admin:exchange_pluginconfig_change", args=[config.pk]))
        self.assertNotContains(page, "s3cr3t-misp-key")

    def test_a_misp_feed_is_configured_in_the_admin(self):
        config = self.post("misp_feed", cfg_url="https://www.circl.lu/doc/misp/feed-osint/", cfg_types=["url"],
                           cfg_include_non_ids="on")
        self.assertEqual(config.settings, {
            "url": "https://www.circl.lu/doc/misp/feed-osint/", "types": ["url"], "include_non_ids": True,
            "loop_tag": "cte:shared", "username": ""})
