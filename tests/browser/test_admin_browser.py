"""The admin in a real browser (headless Chromium driven by Playwright): the flows a security
engineer goes through, with the admin's own JavaScript (autocomplete, action forms) running."""

import os
import shutil
import unittest

from django.contrib.auth import get_user_model
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.utils import timezone

from connectors.base import Record
from exchange.ingest import ingest_batch
from exchange.models import PluginConfig, SharingConfig
from rules.models import BusinessRule
from tests.support.factories import make_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags for a machine with no display and a closed network (no background connections).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@unittest.skipUnless(CHROMIUM, "needs Chromium (Debian package chromium)")
class AdminInBrowserTests(StaticLiveServerTestCase):
    @classmethod
    def setUpClass(cls):
        # Playwright's sync API runs an event loop in this thread; the ORM calls of the tests
        # themselves stay synchronous.
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        super().setUpClass()
        from playwright.sync_api import sync_playwright

        cls.playwright = sync_playwright().start()
        cls.browser = cls.playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.playwright.stop()
        super().tearDownClass()
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)

    def setUp(self):
        get_user_model().objects.create_superuser("analyst", "analyst@example.com", "correct horse battery")
        self.page = self.browser.new_page()
        self.page.set_default_timeout(15_000)
        self.page.goto(f"{self.live_server_url}/admin/login/")
        self.page.fill("#id_username", "analyst")
        self.page.fill("#id_password", "correct horse battery")
        self.page.click("input[type=submit]")
        self.page.wait_for_selector("#site-name")

    def tearDown(self):
        self.page.close()

    def test_a_web_feed_is_added_from_its_connector_s_form(self):
        page = self.page
        page.goto(f"{self.live_server_url}/admin/exchange/pluginconfig/add/")
        page.click("text=Web feed")
        page.fill("#id_name", "abuse.ch URLhaus")
        page.fill("#id_cfg_url", "https://urlhaus.abuse.ch/downloads/csv_recent/")
        page.select_option("#id_cfg_preset", "urlhaus_csv")
        page.click("input[name=_save]")
        page.wait_for_selector(".messagelist .success")
        config = PluginConfig.objects.get(name="abuse.ch URLhaus")
        self.assertEqual((config.connector, config.settings["preset"]), ("webfeed", "urlhaus_csv"))

    def test_a_rule_with_a_typo_is_refused_where_it_is_then_previewed(self):
        source = make_config("feed")
        ingest_batch(source, [Record("http://a.example/x", reputation=8), Record("198.51.100.9")], timezone.now())
        page = self.page
        page.goto(f"{self.live_server_url}/admin/rules/businessrule/add/")
        page.fill("#id_name", "trusted URLs")
        page.fill("#id_expression", "type = url and reputaton >= 7")
        page.click("input[name=_continue]")
        error = page.inner_text(".field-expression .errorlist")
        self.assertIn("unknown field 'reputaton' (did you mean 'reputation'?)", error)
        page.fill("#id_expression", "type = url and reputation >= 7")
        page.click("input[name=_continue]")
        page.wait_for_selector(".messagelist .success")
        page.click(".object-tools >> text=Preview")
        self.assertIn("1 indicator selected", page.inner_text("#content"))
        self.assertIn("http://a.example/x", page.inner_text("#preview-samples"))

    def test_a_sharing_configuration_is_added_with_the_rule_chosen_by_autocomplete(self):
        make_config("firewalls", connector="edl")
        BusinessRule.objects.create(name="phishing URLs", expression="type = url and tags contains phishing")
        page = self.page
        page.goto(f"{self.live_server_url}/admin/exchange/sharingconfig/add/")
        page.click("text=Publish as an external dynamic list")
        page.fill("#id_name", "URLs to the firewalls")
        page.click(".field-rule .select2-selection")  # the admin's autocomplete widget
        page.fill(".select2-search__field", "phish")
        page.click(".select2-results__option >> text=phishing URLs")
        page.fill("#id_param_slug", "phishing-urls")
        page.fill("#id_param_token", "a-long-enough-token-for-the-list")
        page.click("input[name=_continue]")
        page.wait_for_selector(".messagelist .success")
        self.assertIn("/feeds/edl/phishing-urls.txt", page.inner_text(".field-published"))
        self.assertNotIn("a-long-enough-token-for-the-list", page.content())
        config = SharingConfig.objects.get(name="URLs to the firewalls")
        self.assertEqual((config.rule.name, config.get_secrets()["token"]),
                         ("phishing URLs", "a-long-enough-token-for-the-list"))
