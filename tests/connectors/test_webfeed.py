"""The web feed connector, through the real pull pipeline and a real local HTTP server.

The sample feeds live in tests/fixtures/feeds/; each carries the quirks real feeds have (a
commented CSV header, CRLF, a BOM, padding, upper-case hashes, defanged values) and a few
broken lines, whose line numbers the assertions below name.
"""

import base64
import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

from django.test import TestCase, override_settings
from django_q.models import Schedule

from connectors.base import ConnectorError, Context
from connectors.http import session_for
from connectors.webfeed import MAX_LINE, WebFeedForm
from exchange.models import Indicator, PluginConfig, RejectedRecord, Run, Sighting
from exchange.pull import Skipped, run_pull
from exchange.schedules import pull_schedule_name, sync_pull_schedule
from tests.support.factories import make_config
from tests.support.httpserver import LocalServer, Reply

FEEDS = Path(__file__).resolve().parent.parent / "fixtures" / "feeds"


def feed(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


class _Hangup(ConnectionAbortedError):
    """Raised inside a reply's body: the server drops the connection mid-file, like a killed transfer."""


def cut_after(body: bytes, size: int):
    """Chunks that stop after ``size`` bytes: the server then closes the connection."""
    yield body[:size]
    raise _Hangup


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class FeedTestCase(TestCase):
    def setUp(self):
        self.server = LocalServer()
        self.server.__enter__()
        self.addCleanup(self.server.__exit__, None, None, None)

    def serve(self, path: str, body: bytes, **headers: str) -> str:
        self.server.route(path, Reply(body=body, headers=headers))
        return self.server.url(path)

    def config(self, url: str, name: str = "feed", **settings) -> PluginConfig:
        return make_config(name=name, settings={"url": url, **settings})

    def pull(self, config: PluginConfig, trigger: str = "manual") -> Run:
        with self.assertLogs("cte", "INFO"):  # keeps the pull's log lines out of the test output
            return run_pull(config.pk, trigger=trigger)

    def assertCheckpointIsStartOf(self, config: PluginConfig, run: Run):
        config.refresh_from_db()
        self.assertLessEqual(config.last_run, run.started)
        self.assertGreater(config.last_run, run.started - timedelta(seconds=5))

    def values(self, **filters) -> dict[str, str]:
        return dict(Indicator.objects.filter(**filters).values_list("value", "type"))

    def rejects(self, run: Run) -> list[tuple[int, str]]:
        return list(RejectedRecord.objects.filter(run=run).order_by("position").values_list("position", "reason"))

    def counters(self, run: Run) -> dict[str, int]:
        return {name: getattr(run, name) for name in ("received", "created", "updated", "unchanged", "rejected")}

    def validate(self, config: PluginConfig) -> str:
        """What the admin's "Test connection" action runs."""
        ctx = Context(config=config, settings=dict(config.settings), secrets=config.get_secrets(),
                      session=session_for(config), since=config.last_run, storage=dict(config.storage))
        return config.get_connector().validate(ctx)


class PresetTests(FeedTestCase):
    def test_urlhaus_csv_reads_the_url_column_with_its_date_and_tags(self):
        config = self.config(self.serve("/csv_recent/", feed("urlhaus_recent.csv")), preset="urlhaus_csv",
                             severity="high", tags="urlhaus, abuse.ch")

        run = self.pull(config)

        self.assertEqual(run.status, Run.Status.SUCCESS, run.error)
        self.assertEqual(self.counters(run),
                         {"received": 10, "created": 5, "updated": 0, "unchanged": 1, "rejected": 4})
        self.assertEqual(self.values(), {
            "http://182.117.28.107:36125/i": "url",
            "https://invoices.example-bad.com/payload/Invoice%20May.exe": "url",
            "http://198.51.100.23/bins/x86": "url",
            # A quoted field keeps its comma.
            "http://203.0.113.9:8080/get.php?a=1,b=2": "url",
            # Defanged in the feed, refanged in the store.
            "http://drop.malware-host.net/stage2.php?id=7": "url",
        })
        mozi = Indicator.objects.get(value="http://182.117.28.107:36125/i")
        # Listed twice: one indicator, the earliest dateadded, both lines' tags, the static tags.
        self.assertEqual(mozi.first_seen, at("2024-04-30 07:00:00"))
        self.assertEqual(mozi.tags, ["32-bit", "Mozi", "abuse.ch", "elf", "mips", "urlhaus"])
        self.assertEqual(mozi.severity, "high")
        invoice = Indicator.objects.get(value__startswith="https://invoices.")
        self.assertEqual(invoice.first_seen, at("2024-05-01 22:58:40"))
        self.assertEqual(invoice.tags, ["AgentTesla", "abuse.ch", "exe", "urlhaus"])
        self.assertEqual(set(Indicator.objects.values_list("severity", flat=True)), {"high"})
        self.assertEqual(Indicator.objects.get(value__startswith="http://203.").tags, ["abuse.ch", "urlhaus"])

        sightings = Sighting.objects.filter(source=config)
        self.assertEqual(sightings.count(), 5)
        self.assertEqual(sightings.get(indicator=mozi).hits, 2)

        self.assertEqual(self.rejects(run), [
            (14, "line 14: no value in column 3 (2 columns)"),
            (15, "url: htp:/broken.example.com/x has an unsupported scheme 'htp' (http, https, ftp)"),
            (16, "url: http://999.1.2.3/x.sh has an invalid IPv4 host '999.1.2.3'"),
            (18, "line 18: not valid UTF-8 (the value has bytes that are not text)"),
        ])
        self.assertEqual(RejectedRecord.objects.get(run=run, position=14).value, '"2850005","2024-05-02 09:12:55"')

        self.assertCheckpointIsStartOf(config, run)
        self.assertIsNone(config.cursor)
        self.assertEqual(config.last_status, PluginConfig.Status.OK)

    def test_feodo_ip_blocklist_skips_comments_and_rejects_bad_addresses(self):
        config = self.config(self.serve("/ipblocklist.txt", feed("feodo_ipblocklist.txt")),
                             preset="feodo_ipblocklist")

        run = self.pull(config)

        self.assertEqual(run.status, Run.Status.SUCCESS, run.error)
        self.assertEqual(self.counters(run),
                         {"received": 9, "created": 4, "updated": 0, "unchanged": 1, "rejected": 4})
        self.assertEqual(self.values(), {
            "50.16.16.211": "ipv4", "162.243.103.246": "ipv4", "103.175.16.122": "ipv4", "45.61.136.47": "ipv4",
        })
        self.assertEqual(self.rejects(run), [
            (14, "ipv4: 999.12.1.1 is not an IPv4 address"),
            (16, "ipv4: 10.0.0.300 is not an IPv4 address"),
            (17, f"line 17: longer than {MAX_LINE} characters"),
            (19, "ipv4: 192.0.2.1/24 is not an IPv4 address"),
        ])
        self.assertEqual(set(Indicator.objects.values_list("severity", flat=True)), {"unknown"})
        self.assertEqual(list(Indicator.objects.values_list("tags", flat=True)), [[]] * 4)

    def test_malwarebazaar_sha256_list_with_bom_crlf_upper_case_and_padding(self):
        config = self.config(self.serve("/export/txt/sha256/recent/", feed("malwarebazaar_sha256.txt")),
                             preset="malwarebazaar_sha256", tags="malwarebazaar")

        run = self.pull(config)

        self.assertEqual(run.status, Run.Status.SUCCESS, run.error)
        # The BOM-prefixed first line is a comment, not a rejected value.
        self.assertEqual(self.counters(run),
                         {"received": 7, "created": 3, "updated": 0, "unchanged": 1, "rejected": 3})
        self.assertEqual(self.values(), {
            "094fd325049b8a9a2df04c6e3b0e5be2add1a6d3f6b4b5e33fa0f8e6c9d6be01": "sha256",
            "4e9e8bd2c40b1c0e5f32a3f11d3a3d9c6a0fbd3c2a1e9c8b7a6f5e4d3c2b1a09": "sha256",
            # The last line has no line ending.
            "a591a6d40bf420404a011733cfb7b190d62c65bf0bcda32b57b277d9ad9f146e": "sha256",
        })
        self.assertEqual(self.rejects(run), [
            (8, "sha256: 5D41402ABC4B2A76B9719D911017C592 is not a SHA-256 hash (64 hex digits, not 32)"),
            (9, "sha256: G4E9E8BD2C40B1C0E5F32A3F11D3A3D9C6A0FBD3C2A1E9C8B7A6F5E4D3C2B1A0 is not a SHA-256 hash "
                "(hex digits only)"),
            (12, "line 12: not valid UTF-8 (the value has bytes that are not text)"),
        ])
        self.assertEqual(list(Indicator.objects.values_list("tags", flat=True)), [["malwarebazaar"]] * 3)

    def test_plain_list_detects_each_value_type(self):
        config = self.config(self.serve("/incident.txt", feed("mixed_list.txt")), preset="plain_list")

        run = self.pull(config)

        self.assertEqual(run.status, Run.Status.SUCCESS, run.error)
        self.assertEqual(self.counters(run),
                         {"received": 15, "created": 11, "updated": 0, "unchanged": 0, "rejected": 4})
        self.assertEqual(self.values(), {
            "44d88612fea8a8f36de82e1278abb02f": "md5",
            "3395856ce81f2b7382dee72602f798b642f14140": "sha1",
            "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f": "sha256",
            "198.51.100.7": "ipv4",
            "2001:db8::1": "ipv6",
            "203.0.113.0/24": "cidr",
            "https://evil.example.org/login": "url",
            "http://phish.example.com/Account?id=1": "url",
            "bad.example.net": "domain",
            "attacker@example.org": "email",
            "malware.example.info": "domain",
        })
        self.assertEqual(self.rejects(run), [
            (15, "ipv4: 300.1.1.1 is not an IPv4 address"),
            (16, "detect: not-an-indicator is not a hash, IP address, CIDR block, email address, URL or domain"),
            (17, "cidr: 192.0.2.5/24 has host bits set (the block is 192.0.2.0/24)"),
            (18, "email: user@@example.com has an invalid local part 'user@'"),
        ])

    def test_a_gzip_encoded_feed_is_read(self):
        url = self.serve("/list.txt", gzip.compress(feed("mixed_list.txt")), **{"Content-Encoding": "gzip"})
        config = self.config(url, preset="plain_list")

        run = self.pull(config)

        self.assertEqual((run.status, run.created, run.rejected), (Run.Status.SUCCESS, 11, 4))


class CustomParsingTests(FeedTestCase):
    def test_tab_separated_with_a_header_row_and_columns_named(self):
        url = self.serve("/export.tsv", feed("custom_export.tsv"))
        config = self.config(url, preset="custom", format="csv", delimiter="tab", header_rows=1,
                             indicator_type="domain", column="Indicator", first_seen_column="first seen",
                             tags_column="labels", severity="medium", tags="internal")

        run = self.pull(config)

        self.assertEqual(run.status, Run.Status.SUCCESS, run.error)
        self.assertEqual(self.counters(run),
                         {"received": 5, "created": 3, "updated": 0, "unchanged": 0, "rejected": 2})
        login = Indicator.objects.get(type="domain", value="login-verify.example.com")
        self.assertEqual(login.first_seen, at("2024-04-01 08:00:00"))
        self.assertEqual(login.tags, ["credential theft", "internal", "phishing"])
        self.assertEqual(login.severity, "medium")
        cdn = Indicator.objects.get(value="cdn.evil-updates.example.net")
        self.assertEqual((cdn.first_seen, cdn.tags), (at("2024-03-15 12:30:00"), ["internal"]))
        # "not a date" is no date: the indicator was first seen now, by this pull.
        fraud = Indicator.objects.get(value="pay.example-fraud.com")
        self.assertGreaterEqual(fraud.first_seen, run.started)
        self.assertEqual(self.rejects(run), [
            (5, "domain: no_dots_here is not a fully qualified name (it has no dot)"),
            (6, "line 6: no value in column Indicator (5 columns)"),
        ])

    def test_csv_whose_first_line_names_the_columns(self):
        config = self.config(self.serve("/soc.csv", feed("soc_export.csv")), preset="custom", format="csv",
                             column="observable", first_seen_column="Added", indicator_type="detect")

        run = self.pull(config)

        self.assertEqual(run.status, Run.Status.SUCCESS, run.error)
        # The header line is not a record.
        self.assertEqual((run.received, run.created, run.rejected), (3, 3, 0))
        self.assertEqual(self.values(), {
            "http://203.0.113.77/panel/": "url", "c2.example.org": "domain", "203.0.113.77": "ipv4",
        })
        self.assertEqual(Indicator.objects.get(value="c2.example.org").first_seen, at("2024-04-21 00:00:00"))

    def test_a_column_name_the_header_lacks_disables_the_configuration(self):
        config = self.config(self.serve("/soc.csv", feed("soc_export.csv")), preset="custom", format="csv",
                             column="indicator")

        run = self.pull(config)

        self.assertEqual(run.status, Run.Status.FAILED)
        self.assertIn("the CSV header has no column 'indicator' (it has: Severity, Observable, Added)", run.error)
        config.refresh_from_db()
        self.assertFalse(config.enabled)
        self.assertEqual(Indicator.objects.count(), 0)


class RepeatTests(FeedTestCase):
    def test_pulling_the_same_file_again_adds_nothing_and_doubles_nothing(self):
        config = self.config(self.serve("/csv_recent/", feed("urlhaus_recent.csv"), ETag='"abc"'),
                             preset="urlhaus_csv")
        first = self.pull(config)
        before = dict(Indicator.objects.values_list("value", "first_seen"))

        second = self.pull(config)

        self.assertEqual(second.status, Run.Status.SUCCESS, second.error)
        self.assertEqual((second.received, second.created, second.rejected), (10, 0, 4))
        self.assertEqual(second.updated + second.unchanged, 6)
        self.assertEqual(dict(Indicator.objects.values_list("value", "first_seen")), before)
        self.assertEqual(Sighting.objects.count(), 5)
        self.assertEqual(self.rejects(second), self.rejects(first))
        self.assertEqual(RejectedRecord.objects.filter(run=first).count(), 4)
        # Seen again: last_seen moved to the second pull.
        self.assertTrue(all(seen >= second.started for seen in Indicator.objects.values_list("last_seen", flat=True)))


class ResumeTests(FeedTestCase):
    """A pull killed mid-file resumes after the last line it merged, if the file is the same one."""

    body = feed("mixed_list.txt")
    # Lines 2-12 and 15-18 are records; in batches of 4 the second ends at line 9. The transfer
    # stops inside line 11, so the third batch (lines 10, 11, 12, 15) is never merged.
    cut = body.index(b"Attacker") + 4

    def killed_then(self, *replies: Reply, **settings) -> tuple[PluginConfig, Run]:
        self.server.route("/list.txt", *replies)
        config = self.config(self.server.url("/list.txt"), preset="plain_list", tags="incident-42", **settings)
        with mock.patch("connectors.webfeed.BATCH_SIZE", 4):
            killed = self.pull(config)
        return config, killed

    def snapshot(self) -> list[tuple]:
        return sorted(Sighting.objects.values_list(
            "indicator__type", "indicator__value", "indicator__severity", "indicator__tags", "indicator__active",
            "tags", "hits",
        ))

    def test_a_killed_pull_resumes_after_the_last_merged_line(self):
        headers = {"ETag": '"v1"'}
        config, killed = self.killed_then(Reply(headers=headers, chunks=cut_after(self.body, self.cut)),
                                          Reply(headers=headers, body=self.body))

        self.assertEqual(killed.status, Run.Status.FAILED)
        self.assertIn(f"reading {self.server.url('/list.txt')} failed after line 10", killed.error)
        self.assertEqual((killed.received, killed.created, killed.batches), (8, 8, 2))
        config.refresh_from_db()
        self.assertEqual(config.cursor, {"line": 9, "validators": {"etag": '"v1"', "modified": ""}})
        self.assertIsNone(config.last_run)
        self.assertTrue(config.enabled)  # a broken transfer is not the configuration's fault
        self.assertEqual(Indicator.objects.count(), 8)

        with mock.patch("connectors.webfeed.BATCH_SIZE", 4):
            resumed = self.pull(config)

        self.assertEqual(resumed.status, Run.Status.SUCCESS, resumed.error)
        self.assertEqual(self.counters(resumed),
                         {"received": 7, "created": 3, "updated": 0, "unchanged": 0, "rejected": 4})
        self.assertEqual([position for position, _ in self.rejects(resumed)], [15, 16, 17, 18])
        self.assertCheckpointIsStartOf(config, resumed)
        self.assertIsNone(config.cursor)
        resumed_store = self.snapshot()

        # The same file in one clean pull, into an empty store.
        Indicator.objects.all().delete()
        clean_config = self.config(self.serve("/clean.txt", self.body), name="clean", preset="plain_list",
                                   tags="incident-42")
        with mock.patch("connectors.webfeed.BATCH_SIZE", 4):
            clean = self.pull(clean_config)
        self.assertEqual((clean.received, clean.created, clean.rejected), (15, 11, 4))
        self.assertEqual(resumed_store, self.snapshot())
        self.assertEqual(len(resumed_store), 11)

    def test_a_killed_pull_of_a_file_that_changed_since_reads_the_new_file_from_the_top(self):
        changed = b"# updated\n198.51.100.99\n" + self.body
        config, killed = self.killed_then(
            Reply(headers={"Last-Modified": "Wed, 01 May 2024 10:00:00 GMT"},
                  chunks=cut_after(self.body, self.cut)),
            Reply(headers={"Last-Modified": "Thu, 02 May 2024 10:00:00 GMT"}, body=changed),
        )
        self.assertEqual(killed.status, Run.Status.FAILED)
        config.refresh_from_db()
        self.assertEqual(config.cursor["line"], 9)

        with mock.patch("connectors.webfeed.BATCH_SIZE", 4):
            again = self.pull(config)

        self.assertEqual(again.status, Run.Status.SUCCESS, again.error)
        self.assertEqual((again.received, again.created, again.rejected), (16, 4, 4))
        self.assertIn("198.51.100.99", self.values())
        self.assertEqual(Indicator.objects.count(), 12)

    def test_a_feed_without_etag_or_last_modified_is_read_from_the_top_after_a_kill(self):
        config, killed = self.killed_then(Reply(chunks=cut_after(self.body, self.cut)), Reply(body=self.body))
        self.assertEqual(killed.status, Run.Status.FAILED)

        again = self.pull(config)

        self.assertEqual((again.status, again.received, again.created), (Run.Status.SUCCESS, 15, 3))
        self.assertEqual(Sighting.objects.count(), 11)


class HttpErrorTests(FeedTestCase):
    def private_feed(self, password: str) -> PluginConfig:
        """A feed behind basic authentication (soc / s3cret), configured with ``password``."""
        expected = "Basic " + base64.b64encode(b"soc:s3cret").decode()

        def answer(seen):
            if seen.headers.get("Authorization") != expected:
                return Reply(401, "login required", {"WWW-Authenticate": 'Basic realm="feeds"'})
            return Reply(body=feed("mixed_list.txt"))

        self.server.route("/private.txt", answer)
        config = self.config(self.server.url("/private.txt"), preset="plain_list", username="soc")
        config.set_secrets({"password": password})
        config.save()
        return config

    def test_basic_auth_sends_the_stored_password(self):
        config = self.private_feed("s3cret")

        run = self.pull(config)

        self.assertEqual((run.status, run.created), (Run.Status.SUCCESS, 11))
        self.assertNotIn("password", config.settings)

    def test_401_disables_the_configuration_and_names_the_credentials(self):
        config = self.private_feed("wrong")
        PluginConfig.objects.filter(pk=config.pk).update(last_run=at("2024-05-01 00:00:00"))
        self.assertIsNotNone(sync_pull_schedule(config.pk))

        with self.captureOnCommitCallbacks(execute=True):
            run = self.pull(config)

        self.assertEqual(run.status, Run.Status.FAILED)
        self.assertIn("answered 401: check the username and password", run.error)
        config.refresh_from_db()
        self.assertFalse(config.enabled)
        self.assertEqual(config.last_status, PluginConfig.Status.ERROR)
        self.assertIn("check the username and password", config.last_error)
        self.assertIn("configuration disabled", config.last_error)
        self.assertEqual(config.last_run, at("2024-05-01 00:00:00"))
        self.assertFalse(Schedule.objects.filter(name=pull_schedule_name(config.pk)).exists())
        with self.assertRaisesMessage(Skipped, "disabled"):
            self.pull(config, trigger="schedule")

    def test_404_fails_the_run_and_keeps_the_checkpoint(self):
        config = self.config(self.server.url("/gone.txt"), preset="plain_list")
        PluginConfig.objects.filter(pk=config.pk).update(last_run=at("2024-05-01 00:00:00"))

        run = self.pull(config)

        self.assertEqual(run.status, Run.Status.FAILED)
        self.assertEqual(run.error, f"{self.server.url('/gone.txt')} answered 404: no feed at that URL")
        config.refresh_from_db()
        self.assertEqual(config.last_run, at("2024-05-01 00:00:00"))
        self.assertTrue(config.enabled)
        self.assertEqual(config.last_error, run.error)

    @override_settings(CTE_HTTP_RETRIES=1)
    def test_500_is_retried_then_fails_the_run_and_keeps_the_checkpoint(self):
        self.server.route("/list.txt", Reply(500, "oops"))
        config = self.config(self.server.url("/list.txt"), preset="plain_list")

        run = self.pull(config)

        self.assertEqual(len(self.server.hits("/list.txt")), 2)
        self.assertEqual(run.status, Run.Status.FAILED)
        self.assertIn("answered 500 Internal Server Error", run.error)
        config.refresh_from_db()
        self.assertIsNone(config.last_run)
        self.assertTrue(config.enabled)
        self.assertEqual(Indicator.objects.count(), 0)


class FormTests(TestCase):
    def form(self, **data) -> WebFeedForm:
        fields = {"preset": "custom", "format": "text", "indicator_type": "detect", "severity": "unknown",
                  "column": "1", "comment_prefix": "#", "delimiter": ",", "header_rows": "0"}
        return WebFeedForm(data={**fields, **data})

    def test_custom_and_plain_list_need_a_url(self):
        for preset in ("custom", "plain_list"):
            with self.subTest(preset=preset):
                form = self.form(preset=preset)
                self.assertFalse(form.is_valid())
                self.assertIn("Give the feed's URL", form.errors["url"][0])

    def test_a_known_feed_preset_needs_no_url(self):
        self.assertTrue(self.form(preset="urlhaus_csv").is_valid())

    def test_csv_delimiter_is_one_character_or_tab(self):
        url = "https://feeds.example.com/list.csv"
        self.assertEqual(self.form(url=url, format="csv", delimiter="||").errors["delimiter"],
                         ['One character, or "tab".'])
        self.assertTrue(self.form(url=url, format="csv", delimiter="tab").is_valid())
        self.assertTrue(self.form(url=url, format="csv", delimiter=";").is_valid())

    def test_csv_columns_are_numbered_from_one(self):
        form = self.form(url="https://feeds.example.com/list.csv", format="csv", column="0")
        self.assertFalse(form.is_valid())
        self.assertIn("numbered from 1", form.errors["column"][0])


class TestConnectionTests(FeedTestCase):
    def test_a_good_feed_reports_how_many_values_are_valid(self):
        config = self.config(self.serve("/incident.txt", feed("mixed_list.txt")), preset="plain_list")

        message = self.validate(config)

        self.assertEqual(message, "reachable; of the first 15 values, 11 are valid indicators and 4 would be rejected")
        self.assertEqual(Indicator.objects.count(), 0)  # a test stores nothing

    def test_a_feed_of_the_wrong_type_says_to_check_the_type_and_column(self):
        config = self.config(self.serve("/csv_recent/", feed("urlhaus_recent.csv")), preset="custom",
                             format="csv", column="2", indicator_type="sha256")

        with self.assertRaisesMessage(ConnectorError, "none of the first 10 values could be read as indicators: "
                                                      "check the type and column"):
            self.validate(config)

    def test_wrong_credentials_are_named(self):
        self.server.route("/private.txt", Reply(403, "forbidden"))
        config = self.config(self.server.url("/private.txt"), preset="plain_list", username="soc")

        with self.assertRaisesMessage(ConnectorError, "answered 403: check the username and password"):
            self.validate(config)

    def test_a_transfer_cut_short_is_a_clear_error(self):
        body = feed("mixed_list.txt")
        self.server.route("/list.txt", Reply(chunks=cut_after(body, 60)))
        config = self.config(self.server.url("/list.txt"), preset="plain_list")

        with self.assertRaisesMessage(ConnectorError, f"reading {self.server.url('/list.txt')} failed after line"):
            self.validate(config)


class InlineCommentTests(TestCase):
    def test_a_comment_after_the_value_is_not_part_of_it(self):
        body = "; Spamhaus DROP style\n1.10.16.0/20 ; SBL256894\n198.51.100.7 # C2 of something\n203.0.113.0/24\n"
        with LocalServer() as server:
            server.route("/drop.txt", Reply(200, body))
            config = make_config("drop", settings={"preset": "custom", "url": server.url("/drop.txt"),
                                                   "format": "text", "indicator_type": "detect",
                                                   "comment_prefix": ";", "severity": "high"})
            run = run_pull(config.pk, trigger="manual")
        self.assertEqual((run.created, run.rejected), (3, 0))
        self.assertEqual(sorted(Indicator.objects.values_list("type", "value")),
                         [("cidr", "1.10.16.0/20"), ("cidr", "203.0.113.0/24"), ("ipv4", "198.51.100.7")])
