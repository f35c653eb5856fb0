"""The admin: every page renders, secrets are write-only, the connector form, the actions."""

from unittest import mock

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule, Task

from connectors.base import Record
from exchange.ingest import ingest_batch
from exchange.models import Indicator, PluginConfig, RejectedRecord, Run, Settings, Tenant
from exchange.schedules import pull_schedule_name
from tests.support.factories import make_config
from tests.support.httpserver import LocalServer, Reply

SECRETS = ["s3cr3t-plugin-password", "s3cr3t-v2-token", "s3cr3t-v1-token", "s3cr3t-proxy-password"]


def rendered_form_data(form) -> dict:
    """What a browser would submit for ``form`` as rendered: every widget with its shown value."""
    data = {}
    for name, field in form.fields.items():
        bound = form[name]
        context = field.widget.get_context(bound.html_name, bound.value(), {})["widget"]
        for widget in context.get("subwidgets", [context]):
            if widget.get("type") == "checkbox":
                if widget["attrs"].get("checked"):
                    data[widget["name"]] = "on"
            elif widget.get("type") == "password":
                continue
            elif isinstance(widget.get("value"), list):
                data[widget["name"]] = widget["value"][0] if widget["value"] else ""
            elif widget.get("value") is not None:
                data[widget["name"]] = widget["value"]
    return data


class AdminTestCase(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
        cls.tenant = Tenant.objects.create(name="acme", url="https://acme.goskope.com", token=SECRETS[1],
                                           v1_token=SECRETS[2])
        general = Settings.load()
        general.proxy_url, general.proxy_username, general.proxy_password = "http://proxy:3128", "u", SECRETS[3]
        general.save()
        cls.config = make_config("feed", settings={"preset": "plain_list", "url": "http://127.0.0.1:9/list.txt",
                                                   "username": "reader"}, secrets={"password": SECRETS[0]})
        now = timezone.now()
        result = ingest_batch(cls.config, [Record("hxxp://evil[.]example[.]com/x"), Record("999.1.1.1", "ipv4")], now)
        cls.indicator = Indicator.objects.get()
        cls.pull_run = Run.objects.create(config=cls.config, kind="pull", status="success", started=now, finished=now,
                                     received=2, created=1, rejected=1)
        rejection = result.rejections[0]
        RejectedRecord.objects.create(run=cls.pull_run, position=rejection.position, type="ipv4", value=rejection.value,
                                      reason=rejection.reason)
        Task.objects.create(id="a" * 32, name="ok-task", func="exchange.tasks.age", started=now, stopped=now,
                            success=True)
        Task.objects.create(id="b" * 32, name="bad-task", func="exchange.tasks.age", started=now, stopped=now,
                            success=False, result="boom")
        Schedule.objects.create(name="x", func="exchange.tasks.age")

    def setUp(self):
        self.client.force_login(self.user)

    def config_form(self, config: PluginConfig, **changes) -> dict:
        """The change form of ``config`` as its page renders it now, with ``changes`` typed in."""
        page = self.client.get(reverse("admin:exchange_pluginconfig_change", args=[config.pk]))
        return {**rendered_form_data(page.context["adminform"].form), **changes}


class EveryPageRendersTests(AdminTestCase):
    def test_every_changelist_add_and_change_page_renders_for_a_superuser(self):
        for model, model_admin in admin.site._registry.items():
            opts = model._meta
            with self.subTest(model=opts.label):
                url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
                response = self.client.get(url, follow=True)
                self.assertEqual(response.status_code, 200)
                obj = model._default_manager.first()
                if obj is not None:
                    response = self.client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change",
                                                       args=[obj.pk]))
                    self.assertEqual(response.status_code, 200)
                if model_admin.has_add_permission(mock.Mock(user=self.user)):
                    response = self.client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
                    self.assertEqual(response.status_code, 200)

    def test_the_index_lists_the_exchange(self):
        response = self.client.get(reverse("admin:index"))
        self.assertContains(response, "Plugin configurations")
        self.assertContains(response, "Indicators")

    def test_the_run_page_shows_its_rejected_records(self):
        response = self.client.get(reverse("admin:exchange_run_change", args=[self.pull_run.pk]))
        self.assertContains(response, "ipv4: 999.1.1.1 is not an IPv4 address")
        self.assertContains(response, f"?run__id__exact={self.pull_run.pk}")


class SecretsAreWriteOnlyTests(AdminTestCase):
    def pages(self):
        return [
            reverse("admin:exchange_pluginconfig_change", args=[self.config.pk]),
            reverse("admin:exchange_pluginconfig_changelist"),
            reverse("admin:exchange_tenant_change", args=[self.tenant.pk]),
            reverse("admin:exchange_tenant_changelist"),
            reverse("admin:exchange_settings_change", args=[1]),
            reverse("admin:admin_logentry_changelist") if admin.site.is_registered(admin.models.LogEntry) else None,
        ]

    def assert_no_secret(self, content: str):
        for secret in SECRETS:
            self.assertNotIn(secret, content)
        self.config.refresh_from_db()
        self.assertNotIn(self.config.secrets.token, content)  # not even the ciphertext

    def test_no_page_renders_a_secret_or_its_ciphertext(self):
        for url in filter(None, self.pages()):
            with self.subTest(url=url):
                response = self.client.get(url)
                self.assertEqual(response.status_code, 200)
                self.assert_no_secret(response.content.decode())

    def test_a_stored_secret_is_announced_not_shown(self):
        response = self.client.get(reverse("admin:exchange_pluginconfig_change", args=[self.config.pk]))
        self.assertContains(response, "A value is stored. Leave blank to keep it.")
        self.assertContains(response, 'name="cfg_password"')
        self.assertContains(response, 'type="password"')

    def test_blank_keeps_a_new_value_replaces_and_clear_removes(self):
        url = reverse("admin:exchange_pluginconfig_change", args=[self.config.pk])
        self.client.post(url, self.config_form(self.config, cfg_password=""))
        self.config.refresh_from_db()
        self.assertEqual(self.config.get_secrets(), {"password": SECRETS[0]})
        self.client.post(url, self.config_form(self.config, cfg_password="rotated"))
        self.config.refresh_from_db()
        self.assertEqual(self.config.get_secrets(), {"password": "rotated"})
        response = self.client.post(url, self.config_form(self.config, cfg_clear_password="on"))
        self.assertEqual(response.status_code, 302)
        self.config.refresh_from_db()
        self.assertEqual(self.config.get_secrets(), {})

    def test_tenant_tokens_keep_replace_and_clear(self):
        url = reverse("admin:exchange_tenant_change", args=[self.tenant.pk])
        base = {"name": "acme", "url": "https://acme.goskope.com", "alert_types": "[]", "initial_range": 14}
        self.assertEqual(self.client.post(url, {**base, "token": ""}).status_code, 302)
        self.tenant.refresh_from_db()
        self.assertEqual(self.tenant.token.reveal(), SECRETS[1])
        self.client.post(url, {**base, "token": "new-token", "clear_v1_token": "on"})
        self.tenant.refresh_from_db()
        self.assertEqual((self.tenant.token.reveal(), self.tenant.v1_token.reveal()), ("new-token", ""))

    def test_the_change_history_names_fields_not_values(self):
        url = reverse("admin:exchange_pluginconfig_change", args=[self.config.pk])
        self.client.post(url, self.config_form(self.config, cfg_password="another-s3cr3t"))
        history = self.client.get(reverse("admin:exchange_pluginconfig_history", args=[self.config.pk]))
        self.assertNotIn("another-s3cr3t", history.content.decode())


class PluginConfigFormTests(AdminTestCase):
    def test_adding_starts_with_the_choice_of_connector(self):
        response = self.client.get(reverse("admin:exchange_pluginconfig_add"))
        self.assertContains(response, "?connector=webfeed")
        self.assertContains(response, "Web feed (CSV or text list)")

    def test_the_connector_form_is_part_of_the_page_and_saves_into_settings(self):
        url = reverse("admin:exchange_pluginconfig_add") + "?connector=webfeed"
        page = self.client.get(url)
        self.assertContains(page, 'name="cfg_preset"')
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(url, {
                "name": "feodo", "enabled": "on", "sync_interval": 30, "initial_range": 14, "aging_days": 7,
                "reputation": 7, "ssl_verify": "unknown", "cfg_preset": "feodo_ipblocklist", "cfg_format": "text",
                "cfg_indicator_type": "detect", "cfg_severity": "high", "cfg_password": "feed-pass",
                "cfg_header_rows": 0,
            })
        self.assertEqual(response.status_code, 302, response.content.decode()[:3000])
        config = PluginConfig.objects.get(name="feodo")
        self.assertEqual((config.connector, config.settings["preset"], config.settings["severity"]),
                         ("webfeed", "feodo_ipblocklist", "high"))
        self.assertNotIn("password", config.settings)
        self.assertEqual(config.get_secrets(), {"password": "feed-pass"})
        self.assertEqual(Schedule.objects.get(name=pull_schedule_name(config.pk)).minutes, 30)

    def test_connector_validation_errors_are_shown_on_their_fields(self):
        url = reverse("admin:exchange_pluginconfig_change", args=[self.config.pk])
        response = self.client.post(url, self.config_form(self.config, cfg_preset="custom", cfg_url=""))
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Give the feed")

    def test_saving_a_stale_page_keeps_what_a_run_wrote_meanwhile(self):
        url = reverse("admin:exchange_pluginconfig_change", args=[self.config.pk])
        form = self.config_form(self.config, sync_interval=45)  # the page is open; a run ends meanwhile
        PluginConfig.objects.filter(pk=self.config.pk).update(cursor={"line": 7}, last_status="error",
                                                               last_error="meanwhile", storage={"k": 1})
        self.client.post(url, form)
        self.config.refresh_from_db()
        self.assertEqual(self.config.sync_interval, 45)
        self.assertEqual((self.config.cursor, self.config.last_status, self.config.last_error, self.config.storage),
                         ({"line": 7}, "error", "meanwhile", {"k": 1}))

    def test_ssl_validation_choice_reads_plainly_and_saves(self):
        url = reverse("admin:exchange_pluginconfig_change", args=[self.config.pk])
        self.assertContains(self.client.get(url), "Use the general setting")
        self.client.post(url, self.config_form(self.config, ssl_verify="false"))
        self.config.refresh_from_db()
        self.assertIs(self.config.ssl_verify, False)

    def test_last_run_is_editable(self):
        url = reverse("admin:exchange_pluginconfig_change", args=[self.config.pk])
        self.client.post(url, self.config_form(self.config, last_run_0="2026-01-02", last_run_1="03:04:05"))
        self.config.refresh_from_db()
        self.assertEqual(self.config.last_run.strftime("%Y-%m-%d %H:%M:%S"), "2026-01-02 03:04:05")


class ActionTests(AdminTestCase):
    changelist = reverse("admin:exchange_pluginconfig_changelist")

    def act(self, action, *configs):
        return self.client.post(self.changelist, {"action": action, "_selected_action": [c.pk for c in configs]},
                                follow=True)

    def test_run_now_queues_a_manual_pull(self):
        with mock.patch("exchange.admin.plugins.async_task") as queue:
            response = self.act("run_now", self.config)
        queue.assert_called_once_with("exchange.tasks.pull", self.config.pk, "manual", task_name="pull feed")
        self.assertContains(response, "pull queued")

    def test_test_connection_reports_success_and_failure(self):
        with LocalServer() as server:
            server.route("/list.txt", Reply(200, "198.51.100.1\n198.51.100.2\nnot-an-ioc\n"))
            self.config.settings["url"] = server.url("/list.txt")
            self.config.save()
            response = self.act("test_connection", self.config)
            self.assertContains(response, "Feed: OK, reachable; of the first 3 values, 2 are valid")
            server.route("/list.txt", Reply(401, "no"))
            response = self.act("test_connection", self.config)
            self.assertContains(response, "answered 401")

    def test_reset_last_run_clears_checkpoint_and_cursor(self):
        PluginConfig.objects.filter(pk=self.config.pk).update(last_run=timezone.now(), cursor={"line": 3})
        self.act("reset_last_run", self.config)
        self.config.refresh_from_db()
        self.assertEqual((self.config.last_run, self.config.cursor), (None, None))

    def test_disable_and_enable_follow_through_to_the_schedule(self):
        name = pull_schedule_name(self.config.pk)
        with self.captureOnCommitCallbacks(execute=True):
            self.act("disable", self.config)
        self.assertFalse(PluginConfig.objects.get(pk=self.config.pk).enabled)
        self.assertFalse(Schedule.objects.filter(name=name).exists())
        with self.captureOnCommitCallbacks(execute=True):
            self.act("enable", self.config)
        self.assertTrue(Schedule.objects.filter(name=name).exists())

    def test_the_changelist_shows_status_and_filters_errors(self):
        PluginConfig.objects.filter(pk=self.config.pk).update(last_status="error", last_error="feed answered 500")
        response = self.client.get(self.changelist + "?has_error=yes")
        self.assertContains(response, "feed answered 500")
        self.assertContains(response, ">error</span>")
        self.assertNotContains(self.client.get(self.changelist + "?has_error=no"), "feed answered 500")


class IndicatorAdminTests(AdminTestCase):
    changelist = reverse("admin:exchange_indicator_changelist")

    def test_search_accepts_a_defanged_value(self):
        response = self.client.get(self.changelist, {"q": "hxxp://evil[.]example[.]com/x"})
        self.assertContains(response, "http://evil.example.com/x")
        self.assertNotContains(self.client.get(self.changelist, {"q": "http://other.example"}),
                               "http://evil.example.com/x")

    def test_filters_by_type_active_and_source(self):
        other = make_config("other")
        for query, expected in [({"type__exact": "url"}, True), ({"type__exact": "md5"}, False),
                                ({"active__exact": "1"}, True), ({"source": self.config.pk}, True),
                                ({"source": other.pk}, False)]:
            with self.subTest(query=query):
                response = self.client.get(self.changelist, query)
                self.assertEqual("http://evil.example.com/x" in response.content.decode(), expected)

    def test_the_indicator_page_lists_its_sightings(self):
        second = make_config("second feed", aging_days=0)
        ingest_batch(second, [Record("http://evil.example.com/x", "url", tags=["c2", "<b>"], external_id="ext-9")],
                     timezone.now())
        response = self.client.get(reverse("admin:exchange_indicator_change", args=[self.indicator.pk]))
        self.assertContains(response, "Sightings")
        self.assertContains(response, "<td>feed</td>", html=False)
        self.assertContains(response, "<td>second feed</td>")
        self.assertContains(response, "<td>&lt;b&gt;, c2</td>")  # sorted, and escaped
        self.assertContains(response, "<td>ext-9</td>")
        self.assertContains(response, "<td>never</td>")  # aging off: the second sighting never expires
