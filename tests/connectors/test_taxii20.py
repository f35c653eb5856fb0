"""The STIX/TAXII connector against a TAXII 2.0 server: detection, Range paging, positions."""

from datetime import UTC, datetime, timedelta

from django.test import TestCase

from connectors.base import ConnectorError, Context, Outbound
from connectors.http import new_session
from connectors.taxii import Taxii
from exchange.models import Indicator, Run
from exchange.pull import run_pull
from tests.support.factories import make_config
from tests.support.stixdata import corpus
from tests.support.taxii20 import COLLECTION_ID, STIX_20, Taxii20Server

FIRST_ADDED = datetime.now(UTC) - timedelta(days=1)


def as_stix20(obj: dict) -> dict:
    """The same object as a STIX 2.0 feed writes it: no spec_version, no pattern_type, labels required."""
    legacy = {key: value for key, value in obj.items() if key not in ("spec_version", "pattern_type")}
    if legacy["type"] == "indicator":
        legacy.setdefault("labels", ["malicious-activity"])
    return legacy


class Taxii20Tests(TestCase):
    def setUp(self):
        self.corpus = corpus(120)
        entries = [(as_stix20(obj), FIRST_ADDED + timedelta(seconds=n)) for n, obj in enumerate(self.corpus.objects)]
        self.server = self.enterContext(Taxii20Server(entries, page_size=50))

    def config(self, **values):
        settings = Taxii.clean_settings({"url": self.server.discovery_url, "collections": "", **values})
        settings.pop("password"), settings.pop("token")
        return make_config("taxii 2.0 feed", connector="taxii", settings=settings)

    def pull(self, config) -> Run:
        with self.assertLogs("cte", "INFO"):
            return run_pull(config.pk, trigger="manual")

    def test_a_taxii_20_server_is_detected_and_read_page_by_page_with_range(self):
        config = self.config()
        run = self.pull(config)

        self.assertEqual(run.status, Run.Status.SUCCESS, run.error)
        self.assertEqual(set(Indicator.objects.values_list("type", "value")), self.corpus.kept)
        self.assertEqual((run.received, run.rejected), (len(self.corpus.kept) + self.corpus.rejected,
                                                        self.corpus.rejected))
        objects = self.server.hits(f"/api2/collections/{COLLECTION_ID}/objects/")
        self.assertEqual([seen.headers["Range"] for seen in objects], ["items=0-99", "items=50-149", "items=100-199"])
        self.assertEqual({seen.headers["Accept"] for seen in objects}, {STIX_20})
        discovery = self.server.hits("/taxii/")
        self.assertEqual([seen.headers["Accept"] for seen in discovery][:2],
                         ["application/taxii+json;version=2.1", "application/vnd.oasis.taxii+json; version=2.0"])
        config.refresh_from_db()
        last = FIRST_ADDED + timedelta(seconds=len(self.corpus.objects) - 1)
        self.assertEqual(config.storage["added_after"], {COLLECTION_ID: last.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})

    def test_the_next_pull_asks_only_for_what_was_added_after_the_position(self):
        config = self.config(version="2.0")
        self.pull(config)
        fresh = corpus(10, start=500)
        self.server.entries += [(as_stix20(obj), FIRST_ADDED + timedelta(hours=1, seconds=n))
                                for n, obj in enumerate(fresh.objects)]
        self.server.requests.clear()

        again = self.pull(config)

        self.assertEqual((again.status, again.received), (Run.Status.SUCCESS, len(fresh.kept) + fresh.rejected))
        self.assertEqual(again.created, len(fresh.kept))
        self.assertEqual(self.server.requests[0].headers["Accept"], "application/vnd.oasis.taxii+json; version=2.0")

    def test_adding_objects_needs_taxii_21(self):
        config = self.config()
        ctx = Context(config=config, settings=dict(config.settings), secrets={}, session=new_session(retries=0))
        connector = Taxii()
        with self.assertRaises(ConnectorError) as caught:
            connector.push(ctx, connector.action("add"), {"collection": COLLECTION_ID},
                           [Outbound("domain", "x.example")])
        self.assertTrue(caught.exception.permanent)
        self.assertEqual(str(caught.exception), "adding objects needs a TAXII 2.1 server; this one speaks TAXII 2.0")
        self.assertIn("TAXII 2.0 API root 'TAXII 2.0 root'", connector.validate(ctx))
