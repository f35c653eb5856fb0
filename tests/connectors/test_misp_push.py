"""The MISP "Create event" action through real share runs, against the local fake of the MISP REST
API: one event per run with all its batches, the loop-prevention tag, MISP's refusals recorded
per value, an existing event, and loop prevention end to end (share, then pull from the same MISP)."""

from django.core.exceptions import ValidationError
from django.test import TestCase, override_settings

from connectors.misp.push import RUNS_KEY, CreateEventForm
from exchange.models import Delivery, Indicator, Run, SharingConfig, Sighting
from exchange.pull import run_pull
from exchange.sharing import run_share
from rules.models import BusinessRule
from tests.connectors.test_misp_api import KEY, analyst_event, misp_config
from tests.exchange.test_sharing import feed, make_share
from tests.support.factories import make_config
from tests.support.misp_fake import FakeMisp, Role

VALUES = {"evil.example": "domain", "http://evil.example/gate.php": "url", "198.51.100.5": "ipv4",
          "2001:db8::5": "ipv6", "44d88612fea8a8f36de82e1278abb02f": "md5", "phish@evil.example": "email"}
REFUSED_DOMAIN = ('MISP refused it: value: Domain has an invalid format. Please double check the value or select '
                  'type "other".')


def event_params(**values) -> dict:
    """The action's parameters as the sharing form's defaults give them."""
    fields = CreateEventForm.base_fields
    return {**{name: field.initial for name, field in fields.items() if field.initial is not None}, **values}


class PushTestCase(TestCase):
    def setUp(self):
        self.misp = FakeMisp(KEY)
        self.misp.__enter__()
        self.addCleanup(self.misp.__exit__, None, None, None)
        self.source = make_config("feed")
        self.destination = misp_config(self.misp, batch_size=2)
        self.rule = BusinessRule.objects.create(name="everything", expression="")

    def feed(self, values: dict[str, str]) -> None:
        for value, kind in values.items():
            feed(self.source, value, type_=kind)

    def sharing(self, name: str = "to-misp", **params) -> SharingConfig:
        return make_share(name, rule=self.rule, destination=self.destination, source=self.source,
                          action="create_event", params=event_params(**params))

    def share(self, config: SharingConfig) -> Run:
        with self.assertLogs("cte", "INFO"):
            return run_share(config.pk, trigger="manual")

    def ledger(self, config: SharingConfig) -> dict[str, tuple[str, str]]:
        return {value: (status, error) for value, status, error in
                Delivery.objects.filter(config=config).values_list("value", "status", "last_error")}

    def events(self) -> list[dict]:
        return list(self.misp.state.events.values())


class CreateEventTests(PushTestCase):
    def test_one_event_per_share_run_receives_every_batch_flagged_and_tagged(self):
        self.feed(VALUES)
        config = self.sharing(event_info="Weekly phishing indicators", threat_level_id="2")

        run = self.share(config)

        self.assertEqual((run.status, run.shared, run.failed), (Run.Status.SUCCESS, 6, 0), run.error)
        [event] = self.events()
        self.assertRegex(event["info"], r"^Weekly phishing indicators \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)$")
        self.assertEqual((event["tags"], event["threat_level_id"], event["published"]), (["cte:shared"], 2, False))
        attributes = self.misp.attributes(event["id"])
        self.assertEqual(sorted((a["type"], a["value"]) for a in attributes), sorted([
            ("domain", "evil.example"), ("url", "http://evil.example/gate.php"), ("ip-dst", "198.51.100.5"),
            ("ip-dst", "2001:db8::5"), ("md5", "44d88612fea8a8f36de82e1278abb02f"),
            ("email-src", "phish@evil.example")]))
        self.assertTrue(all(a["to_ids"] and a["tags"] == ["cte:shared"] for a in attributes))
        # Three batches of two, all to the run's one event.
        adds = self.misp.calls("/attributes/add/")
        self.assertEqual([(path, len(body)) for path, body in adds], [(f"/attributes/add/{event['id']}", 2)] * 3)
        self.assertEqual(len(self.misp.calls("/events/add")), 1)
        self.assertEqual(len(self.misp.calls("/tags/add")), 1)  # the tag did not exist yet
        self.assertEqual(set(status for status, _ in self.ledger(config).values()), {"shared"})
        self.destination.refresh_from_db()
        self.assertNotIn(RUNS_KEY, self.destination.storage)

    def test_the_next_run_creates_its_own_event_and_reuses_the_tag(self):
        self.feed({"first.example": "domain"})
        config = self.sharing()
        self.share(config)
        self.feed({"second.example": "domain"})
        self.share(config)
        first, second = self.events()
        self.assertEqual([a["value"] for a in self.misp.attributes(first["id"])], ["first.example"])
        self.assertEqual([a["value"] for a in self.misp.attributes(second["id"])], ["second.example"])
        self.assertEqual(len(self.misp.calls("/tags/add")), 1)

    @override_settings(CTE_HTTP_RETRIES=0, CTE_SHARE_RETRY_MINUTES=0)
    def test_a_run_that_fails_half_way_leaves_its_event_and_the_next_run_starts_another(self):
        self.feed({f"host{number}.evil.example": "domain" for number in range(4)})
        config = self.sharing()
        self.misp.fail("/attributes/add/", 500, after=1)  # the first batch goes in, the second fails
        failed = self.share(config)
        self.assertEqual(failed.status, Run.Status.FAILED)
        self.assertIn("answered 500", failed.error)
        self.assertEqual((failed.shared, failed.failed), (2, 2))
        self.destination.refresh_from_db()
        self.assertNotIn(RUNS_KEY, self.destination.storage)  # a failed run saves no storage

        retried = self.share(config)

        self.assertEqual((retried.status, retried.shared), (Run.Status.SUCCESS, 2), retried.error)
        first, second = self.events()
        self.assertEqual(len(self.misp.attributes(first["id"])), 2)
        self.assertEqual(len(self.misp.attributes(second["id"])), 2)
        self.assertEqual(set(status for status, _ in self.ledger(config).values()), {"shared"})

    def test_publish_at_the_end_of_the_run(self):
        self.feed({"evil.example": "domain"})
        self.share(self.sharing(publish=True))
        [event] = self.events()
        self.assertTrue(event["published"])
        self.assertEqual(len(self.misp.calls("/events/publish/")), 1)

    def test_the_action_chooses_ip_src_email_dst_and_extra_event_tags(self):
        self.feed({"198.51.100.5": "ipv4", "victim@corp.example": "email"})
        self.share(self.sharing(ip_attribute="ip-src", email_attribute="email-dst", event_tags="tlp:amber, campaign:x"))
        [event] = self.events()
        self.assertEqual(event["tags"], ["cte:shared", "tlp:amber", "campaign:x"])
        self.assertEqual(sorted(a["type"] for a in self.misp.attributes()), ["email-dst", "ip-src"])


class RefusalTests(PushTestCase):
    def test_an_attribute_misp_refuses_fails_with_misp_s_reason_and_the_rest_is_shared(self):
        # CTE takes a one-letter top-level domain; MISP's validation does not.
        self.feed({"evil.x": "domain", "good.example": "domain"})
        config = self.sharing()
        run = self.share(config)
        self.assertEqual((run.status, run.shared, run.failed), (Run.Status.SUCCESS, 1, 1))
        self.assertEqual(self.ledger(config), {"evil.x": ("failed", REFUSED_DOMAIN), "good.example": ("shared", "")})

    def test_a_batch_misp_refuses_entirely_fails_value_by_value(self):
        self.feed({"evil.x": "domain", "bad.y": "domain", "lone.z": "domain"})
        config = self.sharing()
        run = self.share(config)  # batches of two: one answered 403 with two errors, one with a single one
        self.assertEqual((run.status, run.shared, run.failed), (Run.Status.SUCCESS, 0, 3))
        self.assertEqual({value: entry for value, entry in self.ledger(config).items()},
                         dict.fromkeys(["evil.x", "bad.y", "lone.z"], ("failed", REFUSED_DOMAIN)))

    def test_a_wrong_key_disables_the_sharing_configuration(self):
        self.destination.set_secrets({"api_key": "wrong"})
        self.destination.save()
        self.feed({"evil.example": "domain"})
        config = self.sharing()
        run = self.share(config)
        config.refresh_from_db()
        self.assertIn("MISP refused the API key", run.error)
        self.assertFalse(config.enabled)

    def test_a_missing_tag_the_user_may_not_create_stops_the_share_before_anything_is_sent(self):
        self.misp.role = Role(perm_tag_editor=False)
        self.feed({"evil.example": "domain"})
        config = self.sharing()
        run = self.share(config)
        self.assertEqual(run.status, Run.Status.FAILED)
        self.assertIn("the tag 'cte:shared' does not exist in MISP and its user may not create tags", run.error)
        self.assertEqual((self.events(), self.misp.attributes()), ([], []))

    def test_an_existing_tag_needs_no_tag_editor(self):
        self.misp.state.tags["cte:shared"] = {"id": 99, "name": "cte:shared", "colour": "#0b6e99"}
        self.misp.role = Role(perm_tag_editor=False)
        self.feed({"evil.example": "domain"})
        run = self.share(self.sharing())
        self.assertEqual(run.shared, 1)
        self.assertEqual(self.misp.attributes()[0]["tags"], ["cte:shared"])


class ExistingEventTests(PushTestCase):
    def test_indicators_go_to_the_configured_event_and_a_value_already_there_counts_as_shared(self):
        existing = self.misp.add_event("Our running blocklist", attributes=[{"type": "domain", "value": "dup.example"}])
        self.feed({"dup.example": "domain", "new.example": "domain"})
        config = self.sharing(event_id=existing["uuid"])
        run = self.share(config)
        self.assertEqual((run.shared, run.failed), (2, 0))
        self.assertEqual(self.events(), [existing])
        self.assertEqual(sorted(a["value"] for a in self.misp.attributes(existing["id"])),
                         ["dup.example", "new.example"])
        self.assertEqual(self.misp.calls("/events/add"), [])

    def test_a_configured_event_that_does_not_exist_disables_the_sharing_configuration(self):
        self.feed({"evil.example": "domain"})
        config = self.sharing(event_id="4242")
        run = self.share(config)
        config.refresh_from_db()
        self.assertIn("MISP has no event 4242 that this API key's user may see (Invalid event)", run.error)
        self.assertFalse(config.enabled)


class LoopPreventionTests(PushTestCase):
    def test_what_cte_shared_to_misp_does_not_come_back_as_misp_s_sightings(self):
        self.feed({"shared.example": "domain", "198.51.100.5": "ipv4"})
        self.share(self.sharing())
        analyst_event(self.misp)  # MISP's own intelligence, in the same instance

        with self.assertLogs("cte", "INFO"):
            pulled = run_pull(self.destination.pk, trigger="manual")

        self.assertEqual(pulled.status, Run.Status.SUCCESS, pulled.error)
        self.assertEqual(self.misp.searches()[0]["tags"], ["!cte:shared"])
        from_misp = set(Sighting.objects.filter(source=self.destination).values_list("indicator__value", flat=True))
        self.assertIn("login-micros0ft.example", from_misp)
        self.assertNotIn("shared.example", from_misp)
        self.assertNotIn("198.51.100.5", from_misp)
        self.assertEqual(set(Sighting.objects.filter(indicator__value="shared.example")
                             .values_list("source__name", flat=True)), {"feed"})

        # Without the guard (another tag) the same pull brings them back: the tag is what stops the loop.
        unguarded = misp_config(self.misp, name="misp-unguarded", loop_tag="some-other-tag")
        with self.assertLogs("cte", "INFO"):
            run_pull(unguarded.pk, trigger="manual")
        back = set(Sighting.objects.filter(source=unguarded).values_list("indicator__value", flat=True))
        self.assertTrue({"shared.example", "198.51.100.5"} <= back)
        self.assertEqual(Indicator.objects.get(value="shared.example").sightings.count(), 2)


class ParameterTests(PushTestCase):
    def test_an_existing_event_must_be_an_id_or_a_uuid(self):
        with self.assertRaises(ValidationError) as caught:
            self.sharing(event_id="last week's event")
        self.assertIn("Create event: event_id: An event id (digits) or UUID.", caught.exception.messages)
        self.assertEqual(self.sharing("by-id", event_id=" 42 ").params["event_id"], "42")
