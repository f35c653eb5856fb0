"""The STIX/TAXII connector as a destination: indicators added to a writable medallion
collection and read back with an independent TAXII client, envelopes within the server's
size limit, status polling, failures per object, revocation, and the share run end to end."""

import json
from datetime import UTC, datetime
from unittest import mock

from django.test import TestCase
from django.utils import timezone
from taxii2client.v21 import Collection

from connectors.base import ConnectorError, Context, Outbound, PushResult, Record
from connectors.http import new_session
from connectors.taxii import Taxii, stix
from connectors.taxii.patterns import read_object
from exchange.ingest import ingest_batch
from exchange.models import Indicator, PluginConfig, Run, SharingConfig
from exchange.sharing import run_share
from rules.models import BusinessRule
from tests.support.factories import make_config
from tests.support.medallion import API_ROOT, READ_ID, WRITE_ID, Medallion, MedallionMixin

SEEN = datetime(2024, 5, 1, 10, tzinfo=UTC)
VALUES = [("url", "http://bad.example/it's\\here"), ("domain", "bad.example"), ("hostname", "www.bad.example"),
          ("ipv4", "198.51.100.7"), ("ipv6", "2001:db8::1"), ("cidr", "203.0.113.0/24"), ("cidr", "2001:db8::/32"),
          ("email", "ceo@bad.example"), ("md5", "d41d8cd98f00b204e9800998ecf8427e"), ("sha1", "a" * 40),
          ("sha256", "b" * 64)]


def outbound(pairs=VALUES, **fields) -> list[Outbound]:
    return [Outbound(type_, value, **{"reputation": 8, "tags": ["phishing"], "first_seen": SEEN, **fields})
            for type_, value in pairs]


class PushTestCase(MedallionMixin, TestCase):
    def destination(self, name: str = "partner collection", **values) -> PluginConfig:
        cleaned = Taxii.clean_settings({"url": self.taxii.discovery_url, "auth": "basic", "username": "writer",
                                        "password": "writer-pass", **values})
        password = cleaned.pop("password")
        cleaned.pop("token")
        return make_config(name, connector="taxii", settings=cleaned, secrets={"password": password})

    def ctx(self, config: PluginConfig) -> Context:
        return Context(config=config, settings=dict(config.settings), secrets=config.get_secrets(),
                       session=new_session(retries=0))

    def push(self, items: list[Outbound], collection: str = "Shared with partners", *, server: Medallion = None,
             retract: bool = False) -> PushResult:
        url = (server or self.taxii).discovery_url
        config = PluginConfig.objects.filter(settings__url=url).first() or self.destination(url, url=url)
        connector = config.get_connector()
        call = connector.retract if retract else connector.push
        return call(self.ctx(config), connector.action("add"), {"collection": collection}, items)

    def read_back(self, server: Medallion = None, collection_id: str = WRITE_ID) -> list[dict]:
        """The collection's objects (their latest versions), read with taxii2-client on its own."""
        server = server or self.taxii
        url = f"{server.root_url}collections/{collection_id}/"
        with Collection(url, user="reader", password="reader-pass") as collection:
            return collection.get_objects().get("objects", [])

    def read_values(self, server: Medallion = None) -> dict[tuple[str, str], dict]:
        now = timezone.now()
        return {(record.type, record.value): obj for obj in self.read_back(server)
                for record in read_object(obj, now).records}

    def posts(self, server: Medallion = None) -> list:
        server = server or self.taxii
        return [hit for hit in server.requests if hit.method == "POST"]


class PushTests(PushTestCase):
    def test_indicators_are_added_as_stix_objects_that_read_back_as_the_same_values(self):
        result = self.push(outbound())

        self.assertEqual((sorted(result.accepted), result.failed), (sorted(v for _, v in VALUES), {}))
        back = self.read_values()
        as_read = {("domain" if t == "hostname" else t, v) for t, v in VALUES}
        self.assertEqual(set(back), as_read)
        obj = back[("url", "http://bad.example/it's\\here")]
        self.assertEqual(obj["pattern"], r"[url:value = 'http://bad.example/it\'s\\here']")
        self.assertEqual((obj["confidence"], obj["labels"], obj["created"], obj["spec_version"]),
                         (80, ["phishing"], "2024-05-01T10:00:00.000Z", "2.1"))
        self.assertEqual(obj["id"], stix.object_id("url", "http://bad.example/it's\\here"))
        post = self.posts()[0]
        self.assertEqual((post.path, post.headers["Content-Type"], post.headers["Accept"]),
                         (f"/{API_ROOT}/collections/{WRITE_ID}/objects/", "application/taxii+json;version=2.1",
                          "application/taxii+json;version=2.1"))

    def test_a_second_push_of_the_same_values_updates_them_rather_than_adding_others(self):
        self.push(outbound())
        result = self.push(outbound(reputation=3, tags=["phishing", "kit"]))

        self.assertEqual(len(result.accepted), len(VALUES))
        back = self.read_back()
        self.assertEqual(len(back), len(VALUES))  # one object per value: its latest version
        self.assertEqual({(obj["confidence"], tuple(obj["labels"])) for obj in back}, {(30, ("phishing", "kit"))})
        self.assertEqual(len(self.taxii.stored(WRITE_ID)), 2 * len(VALUES))  # two versions of each

    def test_envelopes_stay_within_the_servers_largest_request(self):
        with Medallion(max_content_length=2500) as small:
            items = outbound([("domain", f"host{n}.bad.example") for n in range(30)])
            result = self.push(items, server=small)

            self.assertEqual((len(result.accepted), result.failed), (30, {}))
            sizes = [int(hit.headers["Content-Length"]) for hit in self.posts(small)]
            self.assertGreater(len(sizes), 3)
            self.assertLessEqual(max(sizes), 2500)
            self.assertEqual(len(self.read_back(small)), 30)

    def test_an_object_larger_than_the_server_takes_fails_alone_with_why(self):
        with Medallion(max_content_length=2500) as small:
            items = outbound([("domain", "ok.bad.example")]) + [
                Outbound("domain", "huge.bad.example", comments="x" * 3000)]
            result = self.push(items, server=small)

            self.assertEqual(result.accepted, ["ok.bad.example"])
            self.assertRegex(result.failed["huge.bad.example"], r"^the object is 3,\d{3} bytes: over the server's "
                                                                r"limit of 2,500$")

    def test_an_envelope_the_server_refuses_fails_its_values_and_the_others_go(self):
        with Medallion(max_content_length=2500) as small:
            posts = []
            small.fail(422, lambda hit: hit.method == "POST" and len(posts.append(hit) or posts) == 2, consume=False)
            items = outbound([("domain", f"host{n}.bad.example") for n in range(30)])
            result = self.push(items, server=small)

            self.assertEqual([hit.status for hit in self.posts(small)][:3], [202, 422, 202])
            refused = {value for value, reason in result.failed.items()
                       if reason == "the server refused the envelope: HTTP 422 (injected failure)"}
            self.assertTrue(refused)
            self.assertEqual(set(result.accepted) | refused, {item.value for item in items})
            self.assertEqual({obj["name"] for obj in self.read_back(small)}, set(result.accepted))

    def test_a_server_gone_after_the_first_envelopes_keeps_what_arrived(self):
        with Medallion(max_content_length=2500) as small:
            posts = []
            small.fail(503, lambda hit: hit.method == "POST" and len(posts.append(hit) or posts) == 3, consume=False)
            items = outbound([("domain", f"host{n}.bad.example") for n in range(30)])
            result = self.push(items, server=small)

            stored = {obj["name"] for obj in self.read_back(small)}
            self.assertEqual(set(result.accepted), stored)
            self.assertTrue(result.failed)
            objects_url = f"{small.root_url}collections/{WRITE_ID}/objects/"
            self.assertEqual(set(result.failed.values()),
                             {f"not sent: POST {objects_url}: HTTP 503 Injected (injected failure)"})
            self.assertEqual(set(result.failed) | stored, {item.value for item in items})

        with Medallion() as down:
            down.fail(503, lambda hit: hit.method == "POST", consume=False)
            with self.assertRaisesMessage(ConnectorError, "HTTP 503"):
                self.push(outbound()[:2], server=down)

    def test_a_version_the_server_holds_already_is_refused_with_its_message(self):
        moment = timezone.now()
        with mock.patch("connectors.taxii.timezone.now", return_value=moment):
            self.push(outbound()[:2])
            result = self.push(outbound()[:3])

        self.assertEqual(result.accepted, [VALUES[2][1]])
        self.assertEqual(result.failed, {value: "the server refused the object: Unable to process object"
                                         for _, value in VALUES[:2]})

    def test_a_collection_that_may_not_be_written_or_does_not_exist_is_a_permanent_error(self):
        for collection, expected in (("Indicators", "the collection 'Indicators' (" + READ_ID + ") does not allow "
                                                    "writing"),
                                     ("Nowhere", "the API root has no collection 'Nowhere'")):
            with self.subTest(collection), self.assertRaises(ConnectorError) as caught:
                self.push(outbound()[:1], collection)
            self.assertTrue(caught.exception.permanent)
            self.assertIn(expected, str(caught.exception))
        self.assertEqual(self.posts(), [])

    def test_the_action(self):
        action = Taxii().action("add")
        self.assertEqual((action.label, action.mode, action.target_param, action.exclusive, action.retracts),
                         ("Add to collection", "append", "collection", False, True))
        self.assertEqual(set(action.types), {"url", "domain", "hostname", "ipv4", "ipv6", "cidr", "md5", "sha1",
                                             "sha256", "email"})


class StatusTests(PushTestCase):
    def test_a_pending_status_is_polled_until_complete(self):
        with Medallion(pending_polls=2) as slow:
            result = self.push(outbound()[:3], server=slow)

            self.assertEqual(sorted(result.accepted), sorted(v for _, v in VALUES[:3]))
            polls = [hit for hit in slow.requests if "/status/" in hit.path]
            self.assertEqual(len(polls), 2)

    def test_values_still_pending_at_the_deadline_fail_and_are_sent_again_later(self):
        with Medallion(pending_polls=1000) as stuck, mock.patch("connectors.taxii.POLL_TIMEOUT", 0.6):
            result = self.push(outbound()[:2], server=stuck)

        self.assertEqual(result.accepted, [])
        self.assertEqual(set(result.failed.values()), {"still pending at the server after 1 s: sent again at the "
                                                       "next run"})


class RetractTests(PushTestCase):
    def test_retraction_publishes_a_revoked_version_of_what_was_shared(self):
        self.push(outbound())
        gone = outbound([VALUES[0], VALUES[1], ("domain", "never-shared.example")])

        result = self.push(gone, retract=True)

        self.assertEqual((sorted(result.accepted), result.failed),
                         (sorted([VALUES[0][1], VALUES[1][1], "never-shared.example"]), {}))
        revoked = {obj["name"] for obj in self.read_back() if obj.get("revoked")}
        self.assertEqual(revoked, {VALUES[0][1], VALUES[1][1]})
        self.assertEqual(len(self.read_back()), len(VALUES))
        again = self.push(gone[:1], retract=True)  # revoked already: nothing left to do
        self.assertEqual(again.accepted, [VALUES[0][1]])

    def test_a_write_only_collection_cannot_be_read_back_to_revoke(self):
        result = self.push(outbound()[:1], "Drop box", retract=True)
        self.assertEqual(result.failed, {VALUES[0][1]: "the collection does not allow reading: the shared object "
                                                       "cannot be read back to revoke it"})


class ShareRunTests(PushTestCase):
    def test_a_share_run_adds_what_the_rule_selects_then_revokes_what_left(self):
        source = make_config("feed")
        ingest_batch(source, [Record(f"http://bad{n}.example/x", "url") for n in range(3)]
                     + [Record("evil.example", "domain")], timezone.now())
        share = SharingConfig(name="urls to partners", rule=BusinessRule.objects.create(name="urls",
                                                                                        expression="type = url"),
                              destination=self.destination(), action="add", params={"collection": "Shared with "
                                                                                                   "partners"})
        share.full_clean()
        share.save()

        run = run_share(share.pk, trigger="manual")

        self.assertEqual((run.status, run.shared, run.failed), (Run.Status.SUCCESS, 3, 0), run.error)
        self.assertEqual({obj["name"] for obj in self.read_back()}, {f"http://bad{n}.example/x" for n in range(3)})

        Indicator.objects.filter(value="http://bad0.example/x").update(active=False, updated=timezone.now())
        second = run_share(share.pk, trigger="manual")

        self.assertEqual((second.status, second.retracted), (Run.Status.SUCCESS, 1), second.error)
        revoked = [obj["name"] for obj in self.read_back() if obj.get("revoked")]
        self.assertEqual(revoked, ["http://bad0.example/x"])
        self.assertEqual(json.loads(json.dumps(share.params)), {"collection": "Shared with partners"})

        # Revocation is final in STIX: the value, selected again, comes back as a new object.
        Indicator.objects.filter(value="http://bad0.example/x").update(active=True, updated=timezone.now())
        third = run_share(share.pk, trigger="manual")
        self.assertEqual((third.status, third.shared), (Run.Status.SUCCESS, 1), third.error)
        back = [obj for obj in self.read_back() if obj["name"] == "http://bad0.example/x"]
        self.assertEqual(len({obj["id"] for obj in back}), 2)
        self.assertEqual(sorted(bool(obj.get("revoked")) for obj in back), [False, True])
