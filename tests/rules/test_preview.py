"""Rule preview: counts by type, samples, and what a share would change at a destination; no writes."""

from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from connectors.base import Record
from exchange.ingest import ingest_batch
from exchange.models import Delivery, Indicator, Run, SharingConfig
from exchange.sharing import run_share
from rules.models import BusinessRule
from rules.preview import preview
from tests.support.factories import make_config

HASHES = ["d41d8cd98f00b204e9800998ecf8427e", "0cc175b9c0f1b6a831c399e269772661",
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]


class PreviewTestCase(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.feed = make_config("feed", reputation=5)
        cls.partner = make_config("partner", reputation=8, override_reputation=True)
        cls.destination = make_config("dest", connector="recorder")
        now = timezone.now()
        ingest_batch(cls.feed, [Record(value) for value in
                                ["http://a.example/1", "http://b.example/2", "http://c.example/3", *HASHES]], now)
        ingest_batch(cls.partner, [Record("http://p.example/9"), Record(HASHES[0])], now)
        cls.rule = BusinessRule.objects.create(name="urls and md5", expression="type in (url, md5)",
                                               exclusions="http://c.example/3")


class PreviewTests(PreviewTestCase):
    def test_counts_by_type_and_samples_best_first(self):
        result = preview(self.rule)
        self.assertEqual(result.by_type, {"md5": 2, "url": 3})
        self.assertEqual(result.total, 5)
        values = [indicator.value for indicator in result.samples]
        # The partner (reputation 8, override on) owns what it reported: those come first.
        self.assertEqual(set(values[:2]), {"http://p.example/9", HASHES[0]})
        self.assertEqual([indicator.reputation for indicator in result.samples], [8, 8, 5, 5, 5])
        self.assertNotIn("http://c.example/3", values)

    def test_only_what_a_source_reported(self):
        result = preview(self.rule, source=self.partner)
        self.assertEqual(result.by_type, {"md5": 1, "url": 1})

    def test_against_a_destination_it_counts_what_would_be_added_kept_and_retracted(self):
        config = SharingConfig.objects.create(name="urls out", rule=self.rule, destination=self.destination,
                                              action="add", params={"list": "block"})
        run_share(config.pk)
        self.assertEqual(preview(self.rule, destination=self.destination).destination.already_shared, 5)
        Indicator.objects.filter(value="http://a.example/1").update(active=False)
        ingest_batch(self.feed, [Record("http://new.example/x")], timezone.now())
        figures = preview(self.rule, destination=self.destination).destination
        self.assertEqual((figures.to_add, figures.already_shared, figures.to_retract), (1, 4, 1))

    def test_indicators_the_destination_reported_are_not_counted_for_it(self):
        result = preview(self.rule, destination=self.partner)
        self.assertEqual(result.by_type, {"md5": 1, "url": 2})

    def test_a_preview_writes_nothing(self):
        config = SharingConfig.objects.create(name="urls out", rule=self.rule, destination=self.destination,
                                              action="add", params={"list": "block"})
        before = (Delivery.objects.count(), Run.objects.count(), Indicator.objects.count())
        preview(self.rule, source=self.feed, destination=self.destination)
        self.assertEqual((Delivery.objects.count(), Run.objects.count(), Indicator.objects.count()), before)
        self.assertIsNone(SharingConfig.objects.get(pk=config.pk).last_run)


class PreviewPageTests(PreviewTestCase):
    def setUp(self):
        self.client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))

    def test_the_page_shows_counts_samples_and_destination_figures(self):
        url = reverse("admin:rules_businessrule_preview", args=[self.rule.pk])
        page = self.client.get(url, {"source": self.feed.pk, "destination": self.destination.pk})
        self.assertEqual(page.status_code, 200)
        self.assertContains(page, "4 indicators selected, reported by feed")
        self.assertContains(page, "<tr><td>url</td><td>2</td></tr>", html=True)
        self.assertContains(page, "<tr><th>Would be added</th><td>4</td></tr>", html=True)
        self.assertContains(page, "http://b.example/2")
        self.assertNotContains(page, "http://c.example/3</a>")

    def test_the_rule_pages_link_to_the_preview(self):
        url = reverse("admin:rules_businessrule_preview", args=[self.rule.pk])
        self.assertContains(self.client.get(reverse("admin:rules_businessrule_changelist")), url)
        self.assertContains(self.client.get(reverse("admin:rules_businessrule_change", args=[self.rule.pk])), url)


class PreviewCommandTests(PreviewTestCase):
    def test_the_command_prints_counts_samples_and_figures(self):
        out = StringIO()
        call_command("preview", "urls and md5", "--source", "feed", "--destination", "dest", stdout=out)
        text = out.getvalue()
        self.assertIn("urls and md5: 4 active indicator(s) reported by feed", text)
        self.assertRegex(text, r"md5\s+2\n\s+url\s+2\n")
        self.assertIn("first 4 (highest reputation, most recent first):", text)
        self.assertIn("at dest: 4 to add, 0 already shared, 0 to retract", text)

    def test_an_unknown_name_lists_the_known_ones(self):
        with self.assertRaisesMessage(CommandError, "no business rule named 'nope' (known: urls and md5)"):
            call_command("preview", "nope", stdout=StringIO())
