"""The tenant in the admin: its form, its "Test connection" against the fake tenant (and what
it says for each failure), and the rule that one list of a tenant has one sharing writer."""

import ssl
import tempfile
import warnings
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.test import TestCase
from django.urls import reverse
from urllib3.exceptions import InsecureRequestWarning

from connectors.base import Context
from connectors.http import new_session
from exchange.models import Settings, SharingConfig, Tenant
from rules.models import BusinessRule
from tests.connectors.test_http import self_signed_pem
from tests.connectors.test_webhook import closed_port
from tests.support.httpserver import LocalServer, Reply
from tests.support.netskope_fake import ALERTS, URLLIST, FakeTenant, make_netskope, make_tenant


class TenantAdminTestCase(TestCase):
    def setUp(self):
        self.client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
        self.fake = FakeTenant()
        self.fake.__enter__()
        self.addCleanup(self.fake.__exit__, None, None, None)

    def messages_of_a_test(self, tenant: Tenant) -> list[str]:
        response = self.client.post(reverse("admin:exchange_tenant_changelist"),
                                    {"action": "test_connection", "_selected_action": [tenant.pk]})
        self.assertEqual(response.status_code, 302)
        return [str(message) for message in get_messages(response.wsgi_request)]


class TestConnectionTests(TenantAdminTestCase):
    def test_a_good_token_is_checked_on_every_endpoint_the_tenant_is_used_for(self):
        [message] = self.messages_of_a_test(make_tenant(self.fake))
        self.assertIn("acme: OK, the API v2 token of", message)
        self.assertIn("reading malware alerts, reading malsite alerts, listing URL lists", message)
        self.assertIn("API v1 token set", message)
        probes = {request.query.get("index") for request in self.fake.hits(ALERTS)}
        self.assertEqual(probes, {"cte_connection_test"})  # never a pull's own index

    def test_a_wrong_token_is_a_401_that_names_the_token(self):
        [message] = self.messages_of_a_test(make_tenant(self.fake, token="typo"))
        self.assertIn("acme: tenant acme refused the API v2 token (401 Unauthorized)", message)
        self.assertIn("Settings > Tools > REST API v2", message)

    def test_a_missing_scope_is_named_with_what_needs_it(self):
        self.fake.scopes.discard(URLLIST)
        [message] = self.messages_of_a_test(make_tenant(self.fake))
        self.assertIn(f"lacks the scope {URLLIST} (for listing URL lists (URL list sharing))", message)
        self.assertIn("it may: reading malware alerts, reading malsite alerts", message)

    def test_only_the_alert_types_of_the_tenants_filter_are_checked(self):
        self.fake.scopes.discard(ALERTS + "malware")
        [message] = self.messages_of_a_test(make_tenant(self.fake, alert_types=["malsite"]))
        self.assertIn("OK", message)
        self.assertEqual(self.fake.hits(ALERTS + "malware"), [])

    def test_a_wrong_url_says_it_cannot_connect(self):
        [message] = self.messages_of_a_test(make_tenant(self.fake, url=f"http://127.0.0.1:{closed_port()}"))
        self.assertIn("acme: tenant acme: reading malware alerts failed: cannot connect", message)

    def test_a_url_that_is_not_a_tenant_says_so(self):
        with LocalServer() as server:
            server.route("/", Reply(404, "<html>nothing here</html>", {"Content-Type": "text/html"}))
            [message] = self.messages_of_a_test(make_tenant(self.fake, url=server.base_url))
        self.assertIn("has no Netskope API", message)
        self.assertIn("check the tenant URL", message)

    def test_a_failing_proxy_is_named(self):
        general = Settings.load()
        general.proxy_url = f"http://127.0.0.1:{closed_port()}"
        general.save()
        [message] = self.messages_of_a_test(make_tenant(self.fake, use_proxy=True))
        self.assertIn("the proxy refused or failed the connection", message)
        self.assertEqual(self.fake.requests, [])

    def test_a_certificate_that_does_not_validate_is_a_tls_failure(self):
        cert, key = self_signed_pem()
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "cert.pem").write_bytes(cert)
            Path(folder, "key.pem").write_bytes(key)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(Path(folder, "cert.pem"), Path(folder, "key.pem"))
        with FakeTenant(tls=context) as secure:
            [message] = self.messages_of_a_test(make_tenant(secure))
            self.assertIn("TLS failed", message)
            general = Settings.load()
            general.ssl_verify = False
            general.save()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", InsecureRequestWarning)
                message = self.messages_of_a_test(Tenant.objects.get())[-1]
            self.assertIn("OK", message)

    def test_the_plugin_configurations_test_checks_its_own_alert_types(self):
        config = make_netskope(make_tenant(self.fake), alert_types=["malware"])
        ctx = Context(config=config, settings=config.settings, secrets={}, session=new_session(retries=0))
        result = config.get_connector().validate(ctx)
        self.assertIn("reading malware alerts, listing URL lists", result)
        self.assertEqual(self.fake.hits(ALERTS + "malsite"), [])


class TenantFormTests(TenantAdminTestCase):
    def form(self, **values) -> dict:
        return {"name": "acme", "url": "https://acme.goskope.com", "initial_range": 14, "alert_query": "",
                "token": "v2", **values}

    def test_alert_types_are_check_boxes_and_the_query_is_validated(self):
        url = reverse("admin:exchange_tenant_add")
        page = self.client.get(url)
        self.assertContains(page, 'type="checkbox" name="alert_types" value="malsite"')
        response = self.client.post(url, self.form(alert_types=["malsite"], alert_query="severity is high"))
        self.assertContains(response, "write field eq &#x27;value&#x27;")
        response = self.client.post(url, self.form(alert_types=["malsite"], alert_query="severity eq 'high'"))
        self.assertEqual(response.status_code, 302)
        tenant = Tenant.objects.get()
        self.assertEqual((tenant.alert_types, tenant.alert_query), (["malsite"], "severity eq 'high'"))
        self.assertEqual(tenant.token.reveal(), "v2")

    def test_the_tenant_url_must_be_the_https_base_url(self):
        response = self.client.post(reverse("admin:exchange_tenant_add"), self.form(url="http://acme.goskope.com"))
        self.assertContains(response, "The tenant URL is https://&lt;tenant&gt;.goskope.com.")


class OneWriterPerListTests(TestCase):
    def setUp(self):
        self.tenant = Tenant.objects.create(name="acme", url="https://acme.goskope.com", token="t")
        self.first = make_netskope(self.tenant, name="netskope a", alert_types=[])
        self.rule = BusinessRule.objects.create(name="urls", expression="type = url")

    def share(self, name, destination, action="url_list", list_name="cte-urls") -> SharingConfig:
        config = SharingConfig(name=name, rule=self.rule, destination=destination, action=action,
                               params={"list_name": list_name})
        config.full_clean()
        config.save()
        return config

    def test_a_second_configuration_on_the_same_list_is_refused_with_why(self):
        self.share("feed a", self.first)
        with self.assertRaises(ValidationError) as refused:
            self.share("feed b", self.first, list_name="CTE-urls ")
        message = " ".join(refused.exception.messages)
        self.assertIn("Sharing configuration 'feed a' already writes the URL list 'CTE-urls' of tenant acme", message)
        self.assertIn("overwrite each other's entries", message)

    def test_another_plugin_configuration_on_the_same_tenant_is_the_same_list(self):
        self.share("feed a", self.first)
        second = make_netskope(self.tenant, name="netskope b", alert_types=[])
        with self.assertRaises(ValidationError) as refused:
            self.share("feed b", second)
        self.assertIn("(through netskope a)", " ".join(refused.exception.messages))

    def test_the_same_list_name_on_another_tenant_or_another_list_is_fine(self):
        self.share("feed a", self.first)
        globex = Tenant.objects.create(name="globex", url="https://globex.goskope.com", token="t")
        other = make_netskope(globex, name="netskope globex", alert_types=[])
        self.share("feed b", other)
        self.share("feed c", self.first, list_name="cte-urls-2")
        self.share("hashes", self.first, action="file_hash_list")  # a file hash list is another kind of list
        with self.assertRaises(ValidationError):
            self.share("hashes 2", self.first, action="file_hash_list")
        self.assertEqual(SharingConfig.objects.count(), 4)

    def test_editing_a_configuration_does_not_refuse_it_for_its_own_list(self):
        config = self.share("feed a", self.first)
        config.sync_interval = 5
        config.full_clean()
        config.save()
        self.assertEqual(SharingConfig.objects.get().sync_interval, 5)
