"""The MISP feed connector, through the real pull pipeline, against a MISP feed folder served by a
real local HTTP server.

tests/fixtures/misp_feed/ is a feed as MISP writes one: manifest.json and one file per event, and
hashes.csv. Its events: a phishing event (every network type, composites, an object, a deleted
object, context and unflagged attributes, two malformed values), a malware event written with
numbers as integers and flags as 1/0 (hashes, filename|hash composites, malware-sample, a file
object), an event CTE shared (tagged cte:shared), an old event, one the manifest lists but the
folder lacks, and one whose upload was cut short.
"""

import base64
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

from django.test import TestCase, override_settings

from connectors.base import ConnectorError, Context
from connectors.http import session_for
from connectors.misp.feed import MispFeed
from connectors.misp.mapping import CTE_TYPES
from exchange.models import Indicator, PluginConfig, RejectedRecord, Run, Sighting
from exchange.pull import run_pull
from tests.connectors.test_webfeed import cut_after
from tests.support.factories import make_config
from tests.support.httpserver import LocalServer, Reply, Seen
from tests.support.misp_fake import serve_feed

FOLDER = Path(__file__).resolve().parent.parent / "fixtures" / "misp_feed"
PHISHING, MALWARE, SHARED = ("5f0b4c3e-1a2b-4c5d-8e9f-0a1b2c3d4e51", "6a1c5d4f-2b3c-4d5e-9f0a-1b2c3d4e5f62",
                             "7b2d6e5a-3c4d-4e5f-8a1b-2c3d4e5f6a73")
MISSING, TRUNCATED, OLD = ("8c3e7f6b-4d5e-4f6a-9b2c-3d4e5f6a7b84", "9d4f8a7c-5e6f-4a7b-8c3d-4e5f6a7b8c95",
                           "ae5a9b8d-6f7a-4b8c-9d4e-5f6a7b8c9da6")
APRIL = datetime(2024, 4, 1, tzinfo=UTC)

EXPECTED = {
    # The phishing event, and its object.
    "https://login-micros0ft.example/owa/auth.php": "url", "login-micros0ft.example": "domain",
    "mail.login-micros0ft.example": "hostname", "198.51.100.23": "ipv4", "2001:db8::17": "ipv6",
    "203.0.113.0/24": "cidr", "billing@invoices-example.net": "email", "192.0.2.44": "ipv4",
    "cdn.badstatic.example": "domain", "198.51.100.77": "ipv4", "c2.badstatic.example": "hostname",
    "update-check.example": "domain", "198.51.100.99": "ipv4",
    # The malware event, and its object.
    "44d88612fea8a8f36de82e1278abb02f": "md5", "3395856ce81f2b7382dee72602f798b642f14140": "sha1",
    "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f": "sha256",
    "ed01ebfbc9eb5bbea545af4d01bf5f1071661840480439c6e5babe8e080e41aa": "sha256",
    "e99a18c428cb38d5f260853678922e03": "md5", "a9993e364706816aba3e25717850c26c9cd0d89d": "sha1",
}


def uuid_of(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"


class FeedTestCase(TestCase):
    def setUp(self):
        self.server = LocalServer()
        self.server.__enter__()
        self.addCleanup(self.server.__exit__, None, None, None)
        self.url = serve_feed(self.server, FOLDER)

    def config(self, url: str | None = None, *, secrets=None, **values) -> PluginConfig:
        cleaned = MispFeed.clean_settings({"url": url or self.url, "types": list(CTE_TYPES), **values})
        cleaned.pop("password")
        return make_config(name="circl", connector="misp_feed", settings=cleaned, last_run=APRIL, aging_days=0,
                           secrets=secrets)

    def pull(self, config: PluginConfig) -> Run:
        with self.assertLogs("cte", "INFO"):
            return run_pull(config.pk, trigger="manual")

    def values(self) -> dict[str, str]:
        return dict(Indicator.objects.values_list("value", "type"))

    def rejects(self, run: Run | None = None) -> list[tuple[str, str]]:
        rows = RejectedRecord.objects.filter(**({"run": run} if run else {})).order_by("run_id", "position")
        return list(rows.values_list("value", "reason"))

    def fetched(self, uuid: str) -> int:
        return len(self.server.hits(f"/feed/{uuid}.json"))


class FeedPullTests(FeedTestCase):
    def test_a_pull_reads_the_events_changed_since_the_checkpoint_and_keeps_the_broken_ones_as_rejects(self):
        config = self.config()

        run = self.pull(config)

        self.assertEqual(run.status, Run.Status.SUCCESS, run.error)
        self.assertEqual(self.values(), EXPECTED)
        self.assertEqual((run.received, run.created, run.rejected), (24, 19, 5))
        self.assertEqual(self.rejects(run), [
            ("999.1.1.1", f"ipv4: 999.1.1.1 is not an IPv4 address (MISP ip-dst attribute {uuid_of(115)})"),
            ("no-pipe.example", f"MISP domain|ip attribute {uuid_of(116)}: 'no-pipe.example' is not two values "
                                "joined by '|'"),
            ("zz-not-a-hash", f"md5: zz-not-a-hash is not an MD5 hash (hex digits only) (MISP filename|md5 attribute "
                              f"{uuid_of(206)})"),
            (f"{MISSING}.json", f"event file {self.url}{MISSING}.json is missing (HTTP 404): the manifest lists it, "
                                "the server does not have it"),
            (f"{TRUNCATED}.json", mock.ANY),
        ])
        truncated = self.rejects(run)[-1][1]
        self.assertTrue(truncated.startswith(f"event file {self.url}{TRUNCATED}.json is not valid JSON ("), truncated)
        self.assertTrue(truncated.endswith("): cut short or damaged at the source"), truncated)
        # The shared event is left out without a request, so is the old one; hashes.csv is not read.
        self.assertEqual((self.fetched(SHARED), self.fetched(OLD), len(self.server.hits("/feed/hashes.csv"))),
                         (0, 0, 0))
        self.assertNotIn("shared-by-cte.example", self.values())
        config.refresh_from_db()
        self.assertEqual((config.last_run, config.cursor), (run.started, None))

    def test_event_and_attribute_metadata_become_the_indicator_s(self):
        self.pull(self.config())
        landing = Indicator.objects.get(type="url")
        self.assertEqual(landing.tags, ["kill-chain:delivery", "tlp:white"])
        self.assertEqual(landing.severity, "high")  # threat level 1
        self.assertEqual(landing.comments, "Phishing campaign against finance teams; landing page")
        self.assertEqual((landing.first_seen, landing.last_seen),
                         (datetime(2024, 4, 28, 8, tzinfo=UTC), datetime(2024, 4, 30, 18, 30, tzinfo=UTC)))
        sighting = Sighting.objects.get(indicator=landing)
        self.assertEqual(sighting.external_id, uuid_of(101))
        sample = Indicator.objects.get(value="44d88612fea8a8f36de82e1278abb02f")  # numbers written as integers
        self.assertEqual((sample.severity, sample.tags), ("medium", ["malware:loader", "tlp:green"]))
        self.assertEqual(sample.last_seen, datetime(2024, 5, 2, 10, tzinfo=UTC))

    def test_the_next_pull_fetches_only_the_manifest_when_nothing_changed(self):
        config = self.config()
        self.pull(config)
        requests_before = len(self.server.requests)
        run = self.pull(config)
        self.assertEqual((run.status, run.received), (Run.Status.SUCCESS, 0))
        self.assertEqual([seen.path for seen in self.server.requests[requests_before:]], ["/feed/manifest.json"])

    def test_attributes_not_flagged_for_ids_come_when_the_configuration_asks(self):
        run = self.pull(self.config(include_non_ids=True))
        self.assertEqual(run.created, 22)
        self.assertEqual({value: kind for value, kind in self.values().items() if value not in EXPECTED}, {
            "benign-context.example": "domain", "victim@corp-example.org": "email",
            "5d41402abc4b2a76b9719d911017c592": "md5"})

    def test_only_the_chosen_types_are_kept(self):
        self.pull(self.config(types=["md5", "sha1", "sha256"]))
        self.assertEqual(self.values(), {value: kind for value, kind in EXPECTED.items()
                                         if kind in ("md5", "sha1", "sha256")})

    def test_the_manifest_s_own_url_is_accepted_as_the_feed_url(self):
        run = self.pull(self.config(self.url + "manifest.json"))
        self.assertEqual(run.created, 19)


class ResumeTests(FeedTestCase):
    @override_settings(CTE_HTTP_RETRIES=0)
    def test_a_failure_half_way_resumes_inside_the_event_it_stopped_in_without_loss_or_doubles(self):
        malware = (FOLDER / f"{MALWARE}.json").read_bytes()
        self.server.route(f"/feed/{MALWARE}.json", Reply(503, "busy"), Reply(body=malware))
        config = self.config()
        with mock.patch("connectors.misp.feed.BATCH_SIZE", 4):
            failed = self.pull(config)
            config.refresh_from_db()
            self.assertEqual(failed.status, Run.Status.FAILED)
            self.assertIn(f"{MALWARE}.json answered 503", failed.error)
            self.assertTrue(config.enabled)
            # Three batches of four records of the phishing event were merged; the cursor says so.
            self.assertEqual(config.cursor["partial"], [1714557600, PHISHING, 12])
            self.assertEqual(failed.received, 12)

            resumed = self.pull(config)

        self.assertEqual(resumed.status, Run.Status.SUCCESS, resumed.error)
        self.assertEqual(failed.received + resumed.received, 24)
        self.assertEqual(self.values(), EXPECTED)
        self.assertEqual(len(self.rejects()), 5)  # each rejected once, across the two runs
        self.assertEqual(set(Sighting.objects.values_list("hits", flat=True)), {1})
        config.refresh_from_db()
        self.assertIsNone(config.cursor)

    @override_settings(CTE_HTTP_RETRIES=0)
    def test_a_transfer_cut_off_fails_the_run_rather_than_rejecting_the_event_and_the_next_run_reads_it(self):
        malware = (FOLDER / f"{MALWARE}.json").read_bytes()
        self.server.route(f"/feed/{MALWARE}.json", Reply(chunks=cut_after(malware, 300)), Reply(body=malware))
        config = self.config()
        failed = self.pull(config)
        self.assertEqual(failed.status, Run.Status.FAILED)
        self.assertEqual(failed.error, f"{self.url}{MALWARE}.json: the transfer broke off before the end of the file")
        self.assertEqual(RejectedRecord.objects.filter(value=f"{MALWARE}.json").count(), 0)
        resumed = self.pull(config)
        self.assertEqual(resumed.status, Run.Status.SUCCESS, resumed.error)
        self.assertEqual(self.values(), EXPECTED)

    @override_settings(CTE_HTTP_RETRIES=0)
    def test_a_resumed_first_pull_keeps_the_first_attempt_s_range(self):
        malware = (FOLDER / f"{MALWARE}.json").read_bytes()
        self.server.route(f"/feed/{MALWARE}.json", Reply(500, "oops"), Reply(body=malware))
        config = self.config()
        PluginConfig.objects.filter(pk=config.pk).update(last_run=None, initial_range=36500)
        with mock.patch("connectors.misp.feed.BATCH_SIZE", 4):
            self.pull(config)
            config.refresh_from_db()
            first_since = config.cursor["since"]
            self.pull(config)
        self.assertEqual(self.values(), {**EXPECTED, "old-campaign.example": "domain"})
        self.assertLess(first_since, int(datetime(2023, 1, 1, tzinfo=UTC).timestamp()))


class RefusalTests(FeedTestCase):
    def test_a_folder_without_a_manifest_fails_the_pull_with_the_reason(self):
        run = self.pull(self.config(self.server.url("/elsewhere/")))
        self.assertEqual(run.status, Run.Status.FAILED)
        self.assertEqual(run.error, f"{self.server.url('/elsewhere/manifest.json')} answered 404: no MISP feed there "
                                    "(give the folder that holds manifest.json)")

    def test_a_manifest_that_is_not_json_fails_the_pull(self):
        self.server.route("/bad/manifest.json", Reply(body=b'{"5f0b4c3e-1a2b'))
        run = self.pull(self.config(self.server.url("/bad/")))
        self.assertIn("manifest.json is not valid JSON", run.error)

    def test_basic_authentication_is_sent_and_a_refusal_disables_the_configuration(self):
        manifest = (FOLDER / "manifest.json").read_bytes()
        expected = "Basic " + base64.b64encode(b"analyst:s3cret").decode()

        def guarded(seen: Seen) -> Reply:
            return Reply(body=manifest) if seen.headers.get("Authorization") == expected else Reply(401, "who?")

        self.server.route("/private/manifest.json", guarded)
        good = self.config(self.server.url("/private/"), username="analyst", secrets={"password": "s3cret"})
        self.assertEqual(self.pull(good).status, Run.Status.SUCCESS)
        PluginConfig.objects.filter(pk=good.pk).update(last_run=APRIL)
        good.set_secrets({"password": "wrong"})
        good.save()
        run = self.pull(good)
        good.refresh_from_db()
        self.assertIn("answered 401: check the username and password", run.error)
        self.assertFalse(good.enabled)


class ValidateTests(FeedTestCase):
    def validate(self, config: PluginConfig) -> str:
        ctx = Context(config=config, settings=dict(config.settings), secrets=config.get_secrets(),
                      session=session_for(config))
        return config.get_connector().validate(ctx)

    def test_test_connection_summarizes_the_manifest(self):
        self.assertEqual(self.validate(self.config()),
                         f"{self.url}manifest.json lists 6 events, the newest changed 2024-05-03 10:00 UTC; "
                         "0 changed in the last 14 days")

    def test_test_connection_names_a_missing_manifest(self):
        with self.assertRaises(ConnectorError) as caught:
            self.validate(self.config(self.server.url("/nothing/")))
        self.assertIn("answered 404: no MISP feed there", str(caught.exception))
