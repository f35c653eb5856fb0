"""The sharing admin: choose a destination and action, fill in its parameters, see refusals and
warnings where they apply, share now, retry failed deliveries, and the ledger's filters."""

from unittest import mock

from django.contrib.auth import get_user_model
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from connectors.base import Record
from exchange.ingest import ingest_batch
from exchange.models import Delivery, SharingConfig
from rules.models import BusinessRule
from tests.support.factories import make_config


class SharingAdminTestCase(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
        cls.source = make_config("feed")
        cls.destination = make_config("dest", connector="recorder")
        cls.rule = BusinessRule.objects.create(name="urls", expression="type = url")

    def setUp(self):
        self.client.force_login(self.user)

    def add(self, action: str, **fields):
        url = reverse("admin:exchange_sharingconfig_add") + f"?destination={self.destination.pk}&action={action}"
        data = {"name": "share", "enabled": "on", "rule": self.rule.pk, "sync_interval": 60, "share_existing": "on",
                "param_list": "blocklist", **fields}
        return self.client.post(url, data)


class AddTests(SharingAdminTestCase):
    def test_the_add_page_first_lists_the_destinations_and_their_actions(self):
        page = self.client.get(reverse("admin:exchange_sharingconfig_add"))
        self.assertContains(page, "Add to a list")
        self.assertContains(page, "Replace a list")
        self.assertContains(page, f"?destination={self.destination.pk}&amp;action=replace")
        self.assertNotContains(page, "feed</td>")  # a source without push actions is not a destination

    def test_the_action_form_asks_its_parameters_and_saves_them(self):
        page = self.client.get(reverse("admin:exchange_sharingconfig_add")
                               + f"?destination={self.destination.pk}&action=add")
        self.assertContains(page, 'name="param_list"')
        response = self.add("add", source=self.source.pk)
        self.assertEqual(response.status_code, 302)
        config = SharingConfig.objects.get()
        self.assertEqual((config.source, config.destination, config.action, config.params),
                         (self.source, self.destination, "add", {"list": "blocklist"}))

    def test_a_missing_parameter_is_reported_on_its_field(self):
        response = self.add("add", param_list="")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.context["adminform"].form.errors["param_list"], ["This field is required."])

    def test_source_and_destination_the_same_is_refused_with_why(self):
        response = self.add("add", source=self.destination.pk)
        self.assertContains(response, "a share goes one way")
        self.assertFalse(SharingConfig.objects.exists())

    def test_a_second_full_replace_writer_of_one_list_is_refused_with_why(self):
        self.assertEqual(self.add("replace", name="first").status_code, 302)
        response = self.add("replace", name="second")
        self.assertContains(response, "Sharing configuration &#x27;first&#x27; already writes Replace a list")
        self.assertContains(response, "each run would overwrite what the other sent")
        self.assertEqual(SharingConfig.objects.count(), 1)

    def test_a_second_appending_writer_is_saved_with_a_warning(self):
        self.add("add", name="first")
        response = self.add("add", name="second")
        self.assertEqual(response.status_code, 302)
        page = self.client.get(response["Location"])
        self.assertContains(page, "Sharing configuration &#x27;first&#x27; also appends to Add to a list")


class ActionTests(SharingAdminTestCase):
    def setUp(self):
        super().setUp()
        self.add("add")
        self.config = SharingConfig.objects.get()
        ingest_batch(self.source, [Record("http://a.example/x"), Record("http://b.example/y")], timezone.now())
        self.changelist = reverse("admin:exchange_sharingconfig_changelist")

    def test_share_now_queues_a_share_of_each_selected_configuration(self):
        with mock.patch("exchange.admin.sharing.async_task") as queued:
            self.client.post(self.changelist, {"action": "share_now", "_selected_action": [self.config.pk]})
        queued.assert_called_once_with("exchange.tasks.share", self.config.pk, "manual", task_name="share share")

    def test_retry_failed_makes_failed_deliveries_due_at_once_and_queues_a_share(self):
        self.destination.settings = {"refuse": {"http://a.example/x": "too long"}}
        self.destination.save()
        from exchange.sharing import run_share

        run_share(self.config.pk)
        failed = Delivery.objects.get(status="failed")
        self.assertIsNotNone(failed.next_attempt)
        with mock.patch("exchange.admin.sharing.async_task") as queued:
            response = self.client.post(self.changelist, {"action": "retry_failed",
                                                          "_selected_action": [self.config.pk]}, follow=True)
        self.assertContains(response, "Share: 1 failed delivery queued again.")
        failed.refresh_from_db()
        self.assertEqual((failed.attempts, failed.next_attempt), (0, None))
        queued.assert_called_once()

    def test_the_ledger_is_filtered_by_status_and_configuration(self):
        self.destination.settings = {"refuse": {"http://a.example/x": "too long"}}
        self.destination.save()
        from exchange.sharing import run_share

        run_share(self.config.pk)
        url = reverse("admin:exchange_delivery_changelist")
        page = self.client.get(url, {"status__exact": "failed", "config__id__exact": self.config.pk})
        self.assertContains(page, "http://a.example/x")
        self.assertContains(page, "too long")
        self.assertNotContains(page, "http://b.example/y")
        change = self.client.get(reverse("admin:exchange_sharingconfig_change", args=[self.config.pk]))
        self.assertContains(change, f"?config__id__exact={self.config.pk}&amp;status__exact=failed\">1 failed")
