"""This app's TAXII 2.1 server: published collections, their objects and pages, credentials,
media types, and a real TAXII client reading them."""

import base64

from django.core.exceptions import ValidationError
from django.test import LiveServerTestCase, TestCase
from django.urls import reverse
from django.utils import timezone
from taxii2client.v21 import ApiRoot, Collection, as_pages

from connectors.base import Record
from connectors.taxii import stix
from connectors.taxii_server import collection_id
from exchange.ingest import ingest_batch
from exchange.models import Delivery, Indicator, SharingConfig, Sighting
from exchange.pull import run_pull
from exchange.sharing import run_share
from rules.models import BusinessRule
from tests.support.factories import make_config

TOKEN = "taxii-token-0123456789abcdef"
OTHER_TOKEN = "other-token-0123456789abcdef"
TAXII = "application/taxii+json;version=2.1"
URLS = [f"http://bad{i}.example/path" for i in range(5)]


def publish(rule, destination, slug="web", secrets=None, **params) -> SharingConfig:
    config = SharingConfig(name=f"taxii {slug}", rule=rule, destination=destination, action="publish",
                           params={"slug": slug, "title": f"{slug} indicators", **params})
    config.set_secrets(secrets or {"token": TOKEN})
    config.full_clean()
    config.save()
    return config


def store() -> tuple:
    source = make_config("feed", reputation=7)
    records = [Record(url, tags=["phishing"], comments="from the feed") for url in URLS]
    ingest_batch(source, [*records, Record("d41d8cd98f00b204e9800998ecf8427e")], timezone.now())
    destination = make_config("partners", connector="taxii_server")
    rule = BusinessRule.objects.create(name="urls", expression="type = url")
    return source, destination, rule


class TaxiiServerTestCase(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.source, cls.destination, cls.rule = store()
        cls.config = publish(cls.rule, cls.destination)
        run_share(cls.config.pk)
        cls.collection = collection_id("web")

    def get(self, path, token=TOKEN, accept=TAXII, **query):
        headers = {"Accept": accept}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.get(path, query, headers=headers)

    def objects_url(self, collection=None):
        return reverse("taxii-objects", args=[collection or self.collection])


class DiscoveryTests(TaxiiServerTestCase):
    def test_discovery_and_the_api_root_need_no_credentials(self):
        discovery = self.get(reverse("taxii-discovery"), token=None)
        self.assertEqual(discovery["Content-Type"], TAXII)
        self.assertEqual(discovery.json()["api_roots"], ["http://testserver/taxii2/cte/"])
        root = self.get(reverse("taxii-root"), token=None).json()
        self.assertEqual(root["versions"], [TAXII])
        self.assertGreater(root["max_content_length"], 0)

    def test_the_collections_are_those_the_credentials_open(self):
        other_rule = BusinessRule.objects.create(name="hashes", expression="type = md5")
        publish(other_rule, self.destination, slug="hashes", secrets={"token": OTHER_TOKEN})
        listed = self.get(reverse("taxii-collections")).json()["collections"]
        self.assertEqual(listed, [{"id": self.collection, "title": "web indicators", "description": "",
                                   "can_read": True, "can_write": False,
                                   "media_types": ["application/stix+json;version=2.1"]}])
        self.assertEqual([c["title"] for c in self.get(reverse("taxii-collections"), OTHER_TOKEN).json()[
            "collections"]], ["hashes indicators"])

    def test_without_credentials_401_with_wrong_ones_401_and_another_collection_s_404(self):
        self.assertEqual(self.get(reverse("taxii-collections"), token=None).status_code, 401)
        refused = self.get(reverse("taxii-collections"), token="wrong-token-0123456789")
        self.assertEqual(refused.status_code, 401)
        self.assertEqual(refused.json()["http_status"], "401")
        self.assertIn("Basic realm", refused["WWW-Authenticate"])
        publish(BusinessRule.objects.create(name="h", expression="type = md5"), self.destination, slug="hashes",
                secrets={"token": OTHER_TOKEN})
        self.assertEqual(self.get(self.objects_url(), OTHER_TOKEN).status_code, 404)
        self.assertEqual(self.get(self.objects_url(), token=None).status_code, 401)

    def test_a_client_that_accepts_no_taxii_json_gets_406(self):
        self.assertEqual(self.get(reverse("taxii-root"), accept="text/html").status_code, 406)
        self.assertEqual(self.get(reverse("taxii-root"), accept="application/taxii+json;version=2.0").status_code, 406)
        self.assertEqual(self.get(reverse("taxii-root"), accept="application/taxii+json").status_code, 200)

    def test_the_collection_is_read_only(self):
        response = self.client.post(self.objects_url(), b'{"objects": []}', content_type=TAXII,
                                    headers={"Accept": TAXII, "Authorization": f"Bearer {TOKEN}"})
        self.assertEqual(response.status_code, 403)
        self.assertEqual(response.json()["title"], "Forbidden")


class ObjectTests(TaxiiServerTestCase):
    def test_each_shared_value_is_one_stix_indicator(self):
        envelope = self.get(self.objects_url()).json()
        self.assertFalse(envelope["more"])
        by_name = {obj["name"]: obj for obj in envelope["objects"]}
        self.assertEqual(set(by_name), set(URLS))
        first = by_name[URLS[0]]
        self.assertEqual(first["id"], stix.object_id("url", URLS[0]))
        self.assertEqual(first["pattern"], f"[url:value = '{URLS[0]}']")
        self.assertEqual((first["type"], first["spec_version"], first["pattern_type"]), ("indicator", "2.1", "stix"))
        self.assertEqual((first["confidence"], first["labels"], first["description"]), (70, ["phishing"],
                                                                                         "from the feed"))
        self.assertLessEqual(first["created"], first["modified"])
        self.assertIn("valid_until", first)
        self.assertNotIn("revoked", first)

    def test_pages_follow_next_without_skipping_or_repeating(self):
        seen, query = [], {"limit": 2}
        while True:
            response = self.get(self.objects_url(), **query)
            envelope = response.json()
            seen += [obj["id"] for obj in envelope["objects"]]
            self.assertLessEqual(response["X-TAXII-Date-Added-First"], response["X-TAXII-Date-Added-Last"])
            if not envelope["more"]:
                break
            query = {"limit": 2, "next": envelope["next"]}
        self.assertEqual(len(seen), 5)
        self.assertEqual(set(seen), {stix.object_id("url", url) for url in URLS})

    def test_added_after_returns_what_was_added_later(self):
        last = self.get(self.objects_url())["X-TAXII-Date-Added-Last"]
        self.assertEqual(self.get(self.objects_url(), added_after=last).json(), {})
        ingest_batch(self.source, [Record("http://late.example/x")], timezone.now())
        run_share(self.config.pk)
        later = self.get(self.objects_url(), added_after=last).json()["objects"]
        self.assertEqual([obj["name"] for obj in later], ["http://late.example/x"])

    def test_a_retracted_value_is_served_revoked(self):
        Indicator.objects.filter(value=URLS[1]).update(active=False)
        run_share(self.config.pk)
        self.assertEqual(Delivery.objects.get(value=URLS[1]).status, "retracted")
        objects = {obj["name"]: obj for obj in self.get(self.objects_url()).json()["objects"]}
        self.assertIs(objects[URLS[1]]["revoked"], True)
        self.assertNotIn("revoked", objects[URLS[0]])

    def test_a_value_shared_again_after_its_revocation_is_a_new_object(self):
        first_id = stix.object_id("url", URLS[1])
        Indicator.objects.filter(value=URLS[1]).update(active=False)
        run_share(self.config.pk)
        Indicator.objects.filter(value=URLS[1]).update(active=True, updated=timezone.now())
        run_share(self.config.pk)
        [again] = [obj for obj in self.get(self.objects_url()).json()["objects"] if obj["name"] == URLS[1]]
        self.assertNotEqual(again["id"], first_id)  # STIX revocation is final: the old id stays revoked
        self.assertNotIn("revoked", again)
        self.assertEqual(self.get(reverse("taxii-object", args=[self.collection, again["id"]])).status_code, 200)

    def test_a_value_whose_indicator_aged_out_of_the_store_is_still_described(self):
        Indicator.objects.filter(value=URLS[2]).delete()
        run_share(self.config.pk)
        objects = {obj["name"]: obj for obj in self.get(self.objects_url()).json()["objects"]}
        self.assertIs(objects[URLS[2]]["revoked"], True)
        self.assertEqual(objects[URLS[2]]["pattern"], f"[url:value = '{URLS[2]}']")

    def test_match_filters(self):
        wanted = stix.object_id("url", URLS[3])
        self.assertEqual([o["name"] for o in self.get(self.objects_url(), **{"match[id]": wanted}).json()["objects"]],
                         [URLS[3]])
        self.assertEqual(self.get(self.objects_url(), **{"match[type]": "malware"}).json(), {})
        self.assertEqual(len(self.get(self.objects_url(), **{"match[type]": "indicator,malware"}).json()["objects"]),
                         5)
        self.assertEqual(self.get(self.objects_url(), **{"match[spec_version]": "2.0"}).json(), {})
        Indicator.objects.filter(value=URLS[3]).update(updated=timezone.now(), reputation=9)
        run_share(self.config.pk)  # a changed indicator is shared again: a new version of its object
        newest = self.get(self.objects_url(), **{"match[id]": wanted}).json()["objects"][0]
        self.assertEqual(newest["confidence"], 90)
        by_version = self.get(self.objects_url(), **{"match[version]": newest["modified"]}).json()["objects"]
        self.assertEqual([obj["name"] for obj in by_version], [URLS[3]])

    def test_one_object_its_versions_and_the_manifest(self):
        wanted = stix.object_id("url", URLS[0])
        one = self.get(reverse("taxii-object", args=[self.collection, wanted])).json()["objects"]
        self.assertEqual([obj["id"] for obj in one], [wanted])
        versions = self.get(reverse("taxii-versions", args=[self.collection, wanted])).json()
        self.assertEqual(versions, {"more": False, "versions": [one[0]["modified"]]})
        manifest = self.get(reverse("taxii-manifest", args=[self.collection])).json()["objects"]
        self.assertEqual({entry["id"] for entry in manifest}, {stix.object_id("url", url) for url in URLS})
        self.assertEqual(manifest[0]["media_type"], "application/stix+json;version=2.1")
        missing = self.get(reverse("taxii-object", args=[self.collection, "indicator--" + "0" * 36]))
        self.assertEqual(missing.status_code, 404)

    def test_bad_filters_are_400_with_the_reason(self):
        for query, reason in (({"added_after": "yesterday"}, "added_after: 'yesterday' is not a timestamp"),
                              ({"limit": "ten"}, "limit: 'ten' is not a whole number"),
                              ({"next": "???"}, "is not a token this server gave")):
            with self.subTest(query=query):
                response = self.get(self.objects_url(), **query)
                self.assertEqual(response.status_code, 400)
                self.assertIn(reason, response.json()["description"])


class PublishValidationTests(TestCase):
    def test_a_collection_needs_credentials_and_its_own_alias(self):
        _, destination, rule = store()
        with self.assertRaisesMessage(ValidationError, "Protect the list with a token"):
            publish(rule, destination, secrets={"username": ""})
        publish(rule, destination)
        with self.assertRaisesMessage(ValidationError, "The name 'web' is taken by sharing configuration 'taxii web'"):
            again = SharingConfig(name="again", rule=rule, destination=destination, action="publish",
                                  params={"slug": "web", "title": "again"})
            again.set_secrets({"token": OTHER_TOKEN})
            again.full_clean()


class TaxiiClientTests(LiveServerTestCase):
    """taxii2-client, the OASIS TAXII client library, reading a published collection over HTTP."""

    def test_taxii2_client_reads_every_object_page_by_page_with_basic_authentication(self):
        source, destination, rule = store()
        ingest_batch(source, [Record(f"http://many{i}.example/x") for i in range(45)], timezone.now())
        publish(rule, destination, username="partner", secrets={"password": "s3cret-pass"})
        run_share(SharingConfig.objects.get().pk)
        root = ApiRoot(f"{self.live_server_url}/taxii2/cte/", user="partner", password="s3cret-pass")
        [collection] = root.collections
        self.assertEqual((collection.id, collection.can_read, collection.can_write),
                         (collection_id("web"), True, False))
        names = []
        for envelope in as_pages(Collection(collection.url, user="partner", password="s3cret-pass").get_objects,
                                 per_request=20):
            names += [obj["name"] for obj in envelope.get("objects", [])]
        self.assertEqual(len(names), 50)
        self.assertEqual(set(names), set(URLS) | {f"http://many{i}.example/x" for i in range(45)})

    def test_the_stix_taxii_connector_pulls_a_published_collection(self):
        source, destination, rule = store()
        publish(rule, destination)
        run_share(SharingConfig.objects.get().pk)
        puller = make_config("partner taxii", connector="taxii", initial_range=30, secrets={"token": TOKEN},
                             settings={"url": f"{self.live_server_url}/taxii2/", "version": "detect", "auth": "bearer",
                                       "collections": "web indicators", "page_size": 2, "lookback": 0})
        run = run_pull(puller.pk, trigger="manual")
        self.assertEqual((run.status, run.received, run.rejected), ("success", 5, 0), run.error)
        # The values were in the store already: the pull adds the TAXII source's sightings, with what
        # the objects said (confidence 70 -> reputation 7, the labels, the comments).
        sightings = Sighting.objects.filter(source=puller).select_related("indicator")
        self.assertEqual({sighting.indicator.value for sighting in sightings}, set(URLS))
        self.assertEqual({(s.reputation, tuple(s.tags)) for s in sightings}, {(7, ("phishing",))})
        self.assertTrue(all("from the feed" in s.comments for s in sightings))
        again = run_pull(puller.pk, trigger="manual")
        self.assertEqual((again.status, again.received), ("success", 0))  # from where the last pull stopped

    def test_wrong_credentials_are_refused(self):
        source, destination, rule = store()
        publish(rule, destination, username="partner", secrets={"password": "s3cret-pass"})
        import requests

        answer = requests.get(f"{self.live_server_url}/taxii2/cte/collections/", headers={
            "Accept": TAXII, "Authorization": "Basic " + base64.b64encode(b"partner:nope").decode()}, timeout=10)
        self.assertEqual(answer.status_code, 401)
