"""The STIX/TAXII connector's pull, through the real pull pipeline, from medallion (the OASIS
TAXII 2.1 server) on a local port holding generated content (tests/support/stixdata.py)."""

from datetime import timedelta

from django import forms
from django.test import TestCase, override_settings
from django.utils import timezone

from connectors.base import ConnectorError, Context, Record
from connectors.http import new_session, session_for
from connectors.taxii import Taxii
from connectors.taxii.paging import stamp
from connectors.taxii.patterns import timestamp
from exchange.ingest import ingest_batch
from exchange.models import Indicator, PluginConfig, RejectedRecord, Run, Sighting
from exchange.pull import run_pull
from exchange.withdraw import expire_withdrawn
from tests.connectors.test_http import tls_context
from tests.support.factories import make_config
from tests.support.httpserver import LocalServer, Reply
from tests.support.medallion import READ_ID, WRITE_ID, MedallionMixin
from tests.support.stixdata import corpus, indicator, stix_time

COUNT = 300  # six pages of medallion's 50


def with_next(hit) -> bool:
    return hit.method == "GET" and hit.path.endswith("/objects/") and "next" in hit.query


class TaxiiTestCase(MedallionMixin, TestCase):
    def medallion_objects(self) -> list[dict]:
        self.corpus = corpus(COUNT)
        return self.corpus.objects

    def config(self, name: str = "partner feed", **values) -> PluginConfig:
        """A configuration as the admin saves it: the form's cleaned data, secrets apart."""
        cleaned = Taxii.clean_settings({"url": self.taxii.discovery_url, "auth": "basic", "username": "reader",
                                        "password": "reader-pass", "collections": "Indicators", **values})
        secrets = {key: cleaned.pop(key) for key in Taxii.secret_fields if key in cleaned}
        return make_config(name, connector="taxii", settings=cleaned,
                           secrets={key: value for key, value in secrets.items() if value} or None)

    def pull(self, config: PluginConfig) -> Run:
        with self.assertLogs("cte", "INFO"):
            return run_pull(config.pk, trigger="manual")

    def stored(self) -> set[tuple[str, str]]:
        return set(Indicator.objects.values_list("type", "value"))

    def records(self) -> int:
        return len(self.corpus.kept) + self.corpus.rejected

    def snapshot(self) -> list[tuple]:
        return sorted(Sighting.objects.values_list(
            "indicator__type", "indicator__value", "indicator__reputation", "indicator__tags",
            "indicator__comments", "indicator__active", "external_id", "first_seen", "last_seen", "hits"))


class PullTests(TaxiiTestCase):
    def test_a_pull_keeps_every_observable_and_refuses_what_it_cannot_read(self):
        config = self.config()
        run = self.pull(config)

        self.assertEqual(run.status, Run.Status.SUCCESS, run.error)
        self.assertEqual(self.stored(), self.corpus.kept)
        self.assertFalse(self.stored() & self.corpus.withdrawn)  # revoked and expired ones
        self.assertEqual((run.received, run.created, run.rejected),
                         (self.records(), len(self.corpus.kept), self.corpus.rejected))
        reasons = " | ".join(RejectedRecord.objects.filter(run=run).values_list("reason", flat=True))
        for expected in ("pattern_type 'sigma' is not supported", "pattern_type 'yara' is not supported",
                         "the STIX pattern does not parse", "a LIKE comparison does not name one value",
                         "a != comparison does not name one value", "no comparison in the pattern names"):
            self.assertIn(expected, reasons)

    def test_the_metadata_of_each_indicator_object_reaches_the_store(self):
        config = self.config()
        self.pull(config)

        reputations = dict(((t, v), r) for t, v, r in Indicator.objects.values_list("type", "value", "reputation"))
        expected = {pair: rep or config.reputation for pair, rep in self.corpus.reputations.items()}
        self.assertEqual(reputations, expected)
        compound = Indicator.objects.get(type="domain", value="bad9.example.net")
        self.assertEqual(compound.tags, ["campaign-0", "malicious-activity"])
        self.assertIn("Seen in campaign 0\n\nCompound STIX pattern (each comparison is its own indicator): "
                      "([url:value = 'http://bad9.example.com/login'] OR [domain-name:value = 'bad9.example.net']) "
                      "FOLLOWEDBY", compound.comments)
        single = Indicator.objects.get(type="url", value="http://bad0.example.com/login")
        self.assertEqual(single.comments, "Seen in campaign 0")
        source = self.corpus.objects[0]
        sighting = single.sightings.get()
        self.assertEqual((sighting.external_id, sighting.first_seen, sighting.last_seen),
                         (source["id"], timestamp(source["created"]), timestamp(source["modified"])))
        for pair in self.corpus.compound:
            self.assertIn("Compound STIX pattern", Indicator.objects.get(type=pair[0], value=pair[1]).comments)

    def test_pages_follow_next_tokens_and_the_position_is_kept_per_collection(self):
        config = self.config(page_size=100)
        run = self.pull(config)

        asked = self.taxii.object_requests()
        self.assertEqual(len(asked), COUNT // self.max_page_size)  # a limit of 100 silently cut to 50
        self.assertEqual({hit.query["limit"][0] for hit in asked}, {"100"})
        self.assertEqual(len({hit.query["added_after"][0] for hit in asked}), 1)  # the same filters for `next`
        self.assertEqual([with_next(hit) for hit in asked], [False] + [True] * (len(asked) - 1))
        started = timestamp(asked[0].query["added_after"][0])
        self.assertAlmostEqual(started, run.started - timedelta(days=config.initial_range), delta=timedelta(seconds=5))
        self.assertTrue(asked[0].query["added_after"][0].endswith("Z"))
        config.refresh_from_db()
        last_added = self.taxii.collection(READ_ID)["manifest"][-1]["date_added"]
        self.assertEqual(config.storage["added_after"], {READ_ID: last_added})
        self.assertNotIn("withdrawn", config.storage)
        self.assertIsNone(config.cursor)
        self.assertEqual(run.batches, COUNT // self.max_page_size)

    def test_the_next_pull_starts_where_the_last_one_stopped(self):
        config = self.config()
        self.pull(config)
        fresh = corpus(26, start=COUNT)
        self.taxii.add(READ_ID, fresh.objects)
        self.taxii.requests.clear()

        again = self.pull(config)

        self.assertEqual(again.status, Run.Status.SUCCESS, again.error)
        self.assertEqual((again.received, again.created), (len(fresh.kept) + fresh.rejected, len(fresh.kept)))
        self.assertEqual(self.stored(), self.corpus.kept | fresh.kept)
        config.refresh_from_db()
        first = self.taxii.object_requests()[0]
        self.assertEqual(first.query["added_after"], [self.taxii.collection(READ_ID)["manifest"][COUNT - 1]
                                                      ["date_added"]])

    def test_look_back_minutes_read_again_what_was_added_just_before_the_position(self):
        config = self.config(lookback=1)
        self.pull(config)
        config.refresh_from_db()
        position = timestamp(config.storage["added_after"][READ_ID])
        self.taxii.requests.clear()

        again = self.pull(config)

        self.assertEqual(self.taxii.object_requests()[0].query["added_after"], [stamp(position - timedelta(minutes=1))])
        # Objects are added one second apart: the last minute holds the last 60, read again.
        self.assertEqual(again.received, sum(self.corpus.records[-60:]))
        self.assertEqual((again.created, again.updated), (0, 0))

    def test_every_readable_collection_when_none_is_named(self):
        self.taxii.add(WRITE_ID, [indicator(9000, "[domain-name:value = 'partner-shared.example']", timezone.now())])
        config = self.config(collections="")
        run = self.pull(config)

        self.assertEqual(run.status, Run.Status.SUCCESS, run.error)
        self.assertEqual(self.stored(), self.corpus.kept | {("domain", "partner-shared.example")})
        config.refresh_from_db()
        self.assertEqual(set(config.storage["added_after"]), {READ_ID, WRITE_ID})

    def test_an_empty_collection_is_a_successful_pull_of_nothing(self):
        config = self.config(collections="Shared with partners")
        run = self.pull(config)

        self.assertEqual((run.status, run.received, run.batches), (Run.Status.SUCCESS, 0, 0))
        self.assertEqual(self.taxii.object_requests(WRITE_ID)[0].status, 200)


class ResumeTests(TaxiiTestCase):
    def clean_snapshot(self) -> list[tuple]:
        """The store one uninterrupted pull of the same collection makes."""
        Indicator.objects.all().delete()
        clean = self.config("clean pull")
        run = self.pull(clean)
        self.assertEqual(run.status, Run.Status.SUCCESS, run.error)
        self.assertEqual(run.received, self.records())
        return self.snapshot()

    @override_settings(CTE_HTTP_RETRIES=0)
    def test_a_pull_stopped_between_pages_resumes_there_and_ends_with_the_store_of_a_clean_pull(self):
        self.taxii.fail(500, lambda hit: with_next(hit) and len(self.taxii.object_requests()) == 4, consume=False)
        config = self.config()

        stopped = self.pull(config)

        self.assertEqual(stopped.status, Run.Status.FAILED)
        self.assertIn("HTTP 500", stopped.error)
        config.refresh_from_db()
        self.assertIsNone(config.last_run)
        self.assertTrue(config.enabled)
        self.assertEqual(stopped.batches, 3)
        position = config.cursor["positions"][READ_ID]
        self.assertEqual(position["after"], self.taxii.collection(READ_ID)["manifest"][149]["date_added"])
        self.taxii.requests.clear()

        resumed = self.pull(config)

        self.assertEqual(resumed.status, Run.Status.SUCCESS, resumed.error)
        self.assertEqual(stopped.received + resumed.received, self.records())  # nothing lost, nothing twice
        self.assertEqual(resumed.unchanged, 0)
        first = self.taxii.object_requests()[0]
        self.assertNotIn("next", first.query)
        self.assertLess(first.query["added_after"][0], position["after"])  # one microsecond before it
        resumed_store = self.snapshot()
        self.assertEqual(resumed_store, self.clean_snapshot())

    @override_settings(CTE_HTTP_RETRIES=0)
    def test_objects_added_at_one_instant_across_a_page_boundary_are_neither_lost_nor_read_twice(self):
        tied = corpus(120, start=COUNT)
        self.taxii.add(READ_ID, tied.objects, batch=True)  # as one POST adds them: one date_added
        self.taxii.fail(503, lambda hit: with_next(hit) and len(self.taxii.object_requests()) == 8, consume=False)
        config = self.config()

        stopped = self.pull(config)
        self.assertEqual((stopped.status, stopped.batches), (Run.Status.FAILED, 7))  # 50 of the 120 read
        resumed = self.pull(config)

        self.assertEqual(resumed.status, Run.Status.SUCCESS, resumed.error)
        everything = self.records() + len(tied.kept) + tied.rejected
        self.assertEqual(stopped.received + resumed.received, everything)
        self.assertEqual(resumed.unchanged, 0)
        self.assertEqual(self.stored(), self.corpus.kept | tied.kept)

    def test_an_expired_next_token_restarts_from_the_position_without_a_gap(self):
        self.taxii.before(lambda hit: with_next(hit) and len(self.taxii.object_requests()) == 3,
                          self.taxii.expire_tokens)
        config = self.config()

        run = self.pull(config)

        self.assertEqual(run.status, Run.Status.SUCCESS, run.error)
        self.assertEqual((run.received, run.unchanged), (self.records(), 0))
        asked = self.taxii.object_requests()
        self.assertEqual(asked[2].status, 400)  # medallion: "'next' not valid"
        self.assertNotIn("next", asked[3].query)
        self.assertEqual(self.stored(), self.corpus.kept)

    @override_settings(CTE_HTTP_RETRIES=1)
    def test_a_page_lost_after_the_server_moved_past_it_is_read_again(self):
        # The server hands out the third page and the answer is lost (503): the HTTP layer's retry of
        # the same token gets the fourth page. That answer is not trusted: the pager asks again
        # from its position, so the third page is not skipped.
        self.taxii.fail(503, lambda hit: with_next(hit) and len(self.taxii.object_requests()) == 3, consume=True)
        config = self.config()

        run = self.pull(config)

        self.assertEqual(run.status, Run.Status.SUCCESS, run.error)
        self.assertEqual((run.received, run.unchanged), (self.records(), 0))
        self.assertEqual(self.stored(), self.corpus.kept)
        statuses = [hit.status for hit in self.taxii.object_requests()]
        self.assertEqual(statuses[2:4], [503, 200])


class WithdrawnTests(TaxiiTestCase):
    def revoke(self, obj: dict) -> dict:
        later = dict(obj, revoked=True, modified=stix_time(timestamp(obj["modified"]) + timedelta(hours=1)))
        self.taxii.add(READ_ID, [later])
        return later

    def test_a_revoked_version_expires_this_source_s_sightings_of_its_values(self):
        config = self.config()
        other = make_config("another source")
        self.pull(config)
        url_obj, compound_obj = self.corpus.objects[0], self.corpus.objects[9]
        self.revoke(url_obj)
        self.revoke(compound_obj)
        ingest_batch(other, [Record("bad9.example.net", "domain")], timezone.now())  # a second source vouches for it

        config.refresh_from_db()
        ctx = Context(config=config, settings=dict(config.settings), secrets=config.get_secrets(),
                      session=session_for(config), since=config.last_run, storage=dict(config.storage))
        listed = [(record.type, record.value) for batch in Taxii().pull(ctx) for record in batch.records
                  if record.withdrawn]
        self.assertEqual(sorted(listed), sorted([
            ("url", "http://bad0.example.com/login"), ("url", "http://bad9.example.com/login"),
            ("domain", "bad9.example.net"),
            ("sha256", next(v for t, v in self.corpus.compound if t == "sha256" and v in compound_obj["pattern"])),
        ]))

        run = run_pull(config.pk, trigger="manual")  # the same pull, as a scheduled one runs it
        self.assertEqual((run.status, run.withdrawn, run.created, run.rejected), ("success", 4, 0, 0), run.error)

        gone = Indicator.objects.get(type="url", value="http://bad0.example.com/login")
        self.assertFalse(gone.active)
        kept = Indicator.objects.get(type="domain", value="bad9.example.net")
        self.assertTrue(kept.active)  # the other source still reports it
        self.assertEqual(kept.expires_at, kept.sightings.get(source=other).expires_at)
        self.assertIsNotNone(kept.sightings.get(source=config).expires_at)


class ExpireWithdrawnTests(TestCase):
    def setUp(self):
        self.taxii_source = make_config("taxii source", connector="taxii")
        now = timezone.now()
        ingest_batch(self.taxii_source, [Record("http://gone.example/", "url"), Record("kept.example", "domain"),
                                         Record("198.51.100.9", "ipv4")], now)
        forever = make_config("forever", aging_days=0)
        ingest_batch(forever, [Record("kept.example", "domain")], now)
        ingest_batch(make_config("unrelated"), [Record("other.example", "domain")], now)

    def test_only_this_source_s_sightings_of_the_values_expire(self):
        now = timezone.now()
        expired = expire_withdrawn(self.taxii_source, [("url", "HTTP://GONE.example/"), ("domain", "kept.example"),
                                                       ("domain", "other.example"), ("ipv4", "not an address")], now)

        self.assertEqual(expired, 2)
        gone = Indicator.objects.get(value="http://gone.example/")
        self.assertEqual((gone.active, gone.expires_at), (False, now))
        kept = Indicator.objects.get(value="kept.example")
        self.assertEqual((kept.active, kept.expires_at), (True, None))  # another source's sighting never expires
        self.assertEqual(kept.sightings.get(source=self.taxii_source).expires_at, now)
        self.assertTrue(Indicator.objects.get(value="other.example").active)  # this source never reported it
        self.assertTrue(Indicator.objects.get(value="198.51.100.9").active)  # not withdrawn
        self.assertEqual(expire_withdrawn(self.taxii_source, [("url", "http://gone.example/")], now), 0)


    def test_a_withdrawn_record_in_a_batch_expires_the_sighting_when_the_batch_merges(self):
        now = timezone.now()
        result = ingest_batch(self.taxii_source, [Record("http://gone.example/", "url", withdrawn=True),
                                                  Record("new.example", "domain"),
                                                  Record("never.example", "domain", withdrawn=True)], now)
        self.assertEqual((result.received, result.created, result.withdrawn, result.expired, result.unchanged),
                         (1, 1, 2, 1, 0))
        self.assertFalse(Indicator.objects.get(value="http://gone.example/").active)
        self.assertFalse(Indicator.objects.filter(value="never.example").exists())  # nothing added


class FailureTests(TaxiiTestCase):
    def assertDisabledWith(self, config: PluginConfig, run: Run, *fragments: str):
        config.refresh_from_db()
        self.assertEqual(run.status, Run.Status.FAILED)
        for fragment in fragments:
            self.assertIn(fragment, run.error)
        self.assertFalse(config.enabled)
        self.assertIsNone(config.last_run)

    def test_a_wrong_password_disables_the_configuration_and_names_the_credentials(self):
        config = self.config(password="wrong")
        run = self.pull(config)
        self.assertDisabledWith(config, run, "HTTP 401", "check the authentication, username, password or token")

    def test_a_bearer_token_is_sent_and_a_wrong_one_refused(self):
        good = self.config("token feed", auth="bearer", token="s3cr3t-token", username="", password="")
        self.assertEqual(self.pull(good).status, Run.Status.SUCCESS)
        self.assertEqual(self.taxii.requests[0].headers["Authorization"], "Bearer s3cr3t-token")
        bad = self.config("bad token feed", auth="bearer", token="nope", username="", password="")
        self.assertDisabledWith(bad, self.pull(bad), "HTTP 401")

    def test_a_collection_the_root_lacks_is_named_with_the_ones_it_has(self):
        config = self.config(collections="Indicators\nMalware feed")
        run = self.pull(config)
        self.assertDisabledWith(config, run, "the API root has no collection 'Malware feed' (it has: 'Indicators' (",
                                "'Vault' (")
        self.assertEqual(Indicator.objects.count(), 0)

    def test_a_collection_that_may_not_be_read_is_refused(self):
        config = self.config(collections="Drop box")
        self.assertDisabledWith(config, self.pull(config), "the collection 'Drop box'", "does not allow reading")


class ValidateTests(TaxiiTestCase):
    def validate(self, config: PluginConfig, retries: int = 0) -> str:
        ctx = Context(config=config, settings=dict(config.settings), secrets=config.get_secrets(),
                      session=new_session(retries=retries, backoff=0.01))
        return config.get_connector().validate(ctx)

    def test_it_lists_the_collections_with_what_these_credentials_may_do(self):
        message = self.validate(self.config())
        self.assertEqual(message, (
            f"TAXII 2.1 API root 'Test API root' at {self.taxii.root_url} (largest request 100,000 bytes); "
            "collections: 'Indicators' (read), 'Shared with partners' (read, write), 'Drop box' (write), "
            "'Vault' (no access); a pull reads: Indicators"))

    def test_an_api_root_url_works_as_well_as_the_discovery_url(self):
        self.assertIn("a pull reads: Indicators, Shared with partners",
                      self.validate(self.config(url=self.taxii.root_url, version="2.1", collections="")))

    def test_what_is_wrong_is_said(self):
        with LocalServer() as web:
            web.route("/", Reply(200, "<html>hello</html>", {"Content-Type": "text/html"}))
            web.route("/json", Reply(200, '{"hello": "world"}', {"Content-Type": "application/json"}))
            web.route("/forbidden/", Reply(403, '{"title": "Forbidden"}', {"Content-Type": "application/json"}))
            cases = {
                web.url("/forbidden/"): "HTTP 403 (Forbidden): these credentials may not do that",
                web.url("/"): "not a TAXII server",
                web.url("/json"): "not a TAXII server",
                self.taxii.base_url + "/nowhere/": "HTTP 404",
            }
            for url, expected in cases.items():
                with self.subTest(url), self.assertRaises(ConnectorError) as caught:
                    self.validate(self.config(url, url=url))
                self.assertIn(expected, str(caught.exception))
        with self.assertRaises(ConnectorError) as caught:
            self.validate(self.config("closed", url="http://127.0.0.1:9/taxii2/"))
        self.assertIn("cannot connect", str(caught.exception))
        with LocalServer(tls=tls_context()) as secure, self.assertRaises(ConnectorError) as caught:
            self.validate(self.config("self-signed", url=secure.url("/taxii2/")))
        self.assertIn("TLS failed: certificate verify failed", str(caught.exception))
        with self.assertRaises(ConnectorError) as caught:
            self.validate(self.config("wrong password", password="nope"))
        self.assertTrue(caught.exception.permanent)
        self.assertIn("HTTP 401", str(caught.exception))


class FormTests(TestCase):
    def test_basic_needs_a_username_and_bearer_a_token(self):
        with self.assertRaisesMessage(forms.ValidationError, "HTTP Basic needs a username"):
            Taxii.clean_settings({"url": "https://taxii.example/api1/", "auth": "basic"})
        with self.assertRaisesMessage(forms.ValidationError, "Give the bearer token"):
            Taxii.clean_settings({"url": "https://taxii.example/api1/", "auth": "bearer"})
        cleaned = Taxii.clean_settings({"url": "https://taxii.example/api1/", "auth": "none"})
        self.assertEqual((cleaned["version"], cleaned["page_size"], cleaned["lookback"]), ("detect", None, None))
