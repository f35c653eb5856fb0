"""External dynamic lists: what a firewall fetches, behind which credentials, as the ledger changes."""

import base64
from datetime import timedelta

import requests
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import LiveServerTestCase, TestCase
from django.urls import reverse
from django.utils import timezone

from connectors.base import Record
from exchange.ingest import ingest_batch
from exchange.models import Delivery, Indicator, SharingConfig
from exchange.sharing import run_share
from rules.models import BusinessRule
from tests.support.factories import make_config

TOKEN = "edl-token-0123456789abcdef"
PASSWORD = "fw-pass-9f8e7d6c"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def make_list(rule, destination, *, slug="urls", secrets=None, name=None, **params) -> SharingConfig:
    config = SharingConfig(name=name or f"edl {slug}", rule=rule, destination=destination, action="publish",
                           params={"slug": slug, "url_format": "no_scheme", **params})
    config.set_secrets({"token": TOKEN} if secrets is None else secrets)
    config.full_clean()
    config.save()
    return config


class EdlTestCase(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.source = make_config("feed")
        cls.destination = make_config("firewalls", connector="edl")
        cls.everything = BusinessRule.objects.create(name="everything")
        cls.urls = BusinessRule.objects.create(name="urls", expression="type = url")
        now = timezone.now()
        records = [Record("https://evil.example/login", reputation=9), Record("http://bad.example/a?b=1"),
                   Record("198.51.100.7"), Record("10.9.0.0/16", "cidr"), Record("d41d8cd98f00b204e9800998ecf8427e")]
        ingest_batch(cls.source, records, now)

    def fetch(self, slug="urls", **headers):
        return self.client.get(reverse("edl", args=[slug]), headers=headers)

    def lines(self, response) -> list[str]:
        body = b"".join(response.streaming_content if response.streaming else [response.content])
        self.assertEqual(response.status_code, 200, body)
        self.assertEqual(response["Content-Type"], "text/plain; charset=utf-8")
        return body.decode().splitlines()


class ServedListTests(EdlTestCase):
    def test_the_shared_values_are_served_one_per_line_urls_without_scheme(self):
        run_share(make_list(self.urls, self.destination).pk)
        self.assertEqual(self.lines(self.fetch(Authorization=f"Bearer {TOKEN}")),
                         ["bad.example/a?b=1", "evil.example/login"])

    def test_urls_can_be_served_as_stored(self):
        run_share(make_list(self.urls, self.destination, url_format="as_stored").pk)
        self.assertEqual(self.lines(self.fetch(Authorization=f"Bearer {TOKEN}")),
                         ["http://bad.example/a?b=1", "https://evil.example/login"])

    def test_the_list_keeps_to_its_types(self):
        run_share(make_list(self.everything, self.destination, slug="ips", types=["ipv4", "cidr"]).pk)
        self.assertEqual(self.lines(self.fetch("ips", Authorization=f"Bearer {TOKEN}")),
                         ["10.9.0.0/16", "198.51.100.7"])

    def test_nothing_is_served_before_the_first_share_run(self):
        make_list(self.urls, self.destination)
        self.assertEqual(self.lines(self.fetch(Authorization=f"Bearer {TOKEN}")), [])

    def test_an_expired_indicator_leaves_the_list_at_the_next_share_run(self):
        config = make_list(self.urls, self.destination)
        run_share(config.pk)
        Indicator.objects.filter(value="https://evil.example/login").update(active=False)
        self.assertEqual(len(self.lines(self.fetch(Authorization=f"Bearer {TOKEN}"))), 2)  # until the share runs
        run_share(config.pk)
        self.assertEqual(self.lines(self.fetch(Authorization=f"Bearer {TOKEN}")), ["bad.example/a?b=1"])
        self.assertEqual(Delivery.objects.get(value="https://evil.example/login").status, "retracted")

    def test_beyond_its_maximum_the_list_keeps_the_highest_reputation_and_the_rest_waits(self):
        config = make_list(self.urls, self.destination, max_entries=1)
        run = run_share(config.pk)
        self.assertEqual((run.shared, run.pending), (1, 1))
        self.assertEqual(self.lines(self.fetch(Authorization=f"Bearer {TOKEN}")), ["evil.example/login"])
        waiting = Delivery.objects.get(value="http://bad.example/a?b=1")
        self.assertEqual(waiting.status, "pending")
        self.assertIn("over the target's capacity (1 items)", waiting.last_error)

    def test_an_unchanged_list_answers_304_to_its_etag_and_a_change_moves_the_etag(self):
        config = make_list(self.urls, self.destination)
        run_share(config.pk)
        first = self.fetch(Authorization=f"Bearer {TOKEN}")
        self.lines(first)
        again = self.fetch(Authorization=f"Bearer {TOKEN}", **{"If-None-Match": first["ETag"]})
        self.assertEqual(again.status_code, 304)
        Indicator.objects.filter(value="https://evil.example/login").update(active=False)
        run_share(config.pk)
        changed = self.fetch(Authorization=f"Bearer {TOKEN}", **{"If-None-Match": first["ETag"]})
        self.assertEqual(self.lines(changed), ["bad.example/a?b=1"])
        self.assertNotEqual(changed["ETag"], first["ETag"])

    def test_a_disabled_configuration_keeps_serving_its_last_list(self):
        config = make_list(self.urls, self.destination)
        run_share(config.pk)
        SharingConfig.objects.filter(pk=config.pk).update(enabled=False)
        self.assertEqual(len(self.lines(self.fetch(Authorization=f"Bearer {TOKEN}"))), 2)


class CredentialTests(EdlTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.config = make_list(cls.urls, cls.destination, username="panos",
                               secrets={"token": TOKEN, "password": PASSWORD})
        run_share(cls.config.pk)

    def test_the_token_opens_the_list_as_a_bearer_header_or_a_query_parameter(self):
        self.assertEqual(len(self.lines(self.fetch(Authorization=f"Bearer {TOKEN}"))), 2)
        response = self.client.get(reverse("edl", args=["urls"]) + f"?token={TOKEN}")
        self.assertEqual(len(self.lines(response)), 2)

    def test_the_username_and_password_open_the_list_with_http_basic(self):
        self.assertEqual(len(self.lines(self.fetch(Authorization=basic("panos", PASSWORD)))), 2)

    def test_missing_or_wrong_credentials_get_401_with_a_basic_challenge(self):
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": basic("panos", "x")},
                        {"Authorization": basic("other", PASSWORD)}, {"Authorization": "Basic !!notbase64"}):
            with self.subTest(headers=headers):
                response = self.fetch(**headers)
                self.assertEqual(response.status_code, 401)
                self.assertEqual(response["WWW-Authenticate"], 'Basic realm="CTE list urls", charset="UTF-8"')
                self.assertNotIn(b"evil", response.content)

    def test_another_list_s_token_does_not_open_this_one(self):
        make_list(self.everything, self.destination, slug="all", secrets={"token": "another-token-abcdefghij"})
        self.assertEqual(self.fetch(Authorization="Bearer another-token-abcdefghij").status_code, 401)

    def test_an_unknown_list_is_404_and_only_get_and_head_are_served(self):
        self.assertEqual(self.fetch("nope", Authorization=f"Bearer {TOKEN}").status_code, 404)
        response = self.client.post(reverse("edl", args=["urls"]), headers={"Authorization": f"Bearer {TOKEN}"})
        self.assertEqual(response.status_code, 405)
        head = self.client.head(reverse("edl", args=["urls"]), headers={"Authorization": f"Bearer {TOKEN}"})
        self.assertEqual(head.status_code, 200)


class ValidationTests(EdlTestCase):
    def refusal(self, **kwargs) -> str:
        with self.assertRaises(ValidationError) as raised:
            make_list(self.urls, self.destination, **kwargs)
        return " ".join(raised.exception.messages)

    def test_a_list_needs_a_token_or_a_password(self):
        self.assertIn("Protect the list with a token, or a username and password", self.refusal(secrets={}))

    def test_a_short_token_is_refused(self):
        self.assertIn("A token needs at least 16 characters", self.refusal(secrets={"token": "short"}))

    def test_basic_authentication_needs_both_halves(self):
        self.assertIn("needs both a username and a password", self.refusal(username="panos"))
        self.assertIn("needs both a username and a password", self.refusal(secrets={"token": TOKEN, "password": "p"}))

    def test_a_list_name_is_unique_across_destinations(self):
        make_list(self.urls, self.destination)
        self.assertIn("The name 'urls' is taken by sharing configuration 'edl urls'",
                      self.refusal(name="again on the same destination"))
        other = make_config("branch firewalls", connector="edl")
        with self.assertRaises(ValidationError) as raised:
            make_list(self.everything, other, name="elsewhere")
        self.assertIn("The name 'urls' is taken by sharing configuration 'edl urls'",
                      " ".join(raised.exception.messages))

    def test_the_secrets_are_kept_encrypted_and_out_of_the_parameters(self):
        config = make_list(self.urls, self.destination, username="panos",
                           secrets={"token": TOKEN, "password": PASSWORD})
        config.refresh_from_db()
        self.assertEqual(config.get_secrets(), {"token": TOKEN, "password": PASSWORD})
        self.assertNotIn(TOKEN, str(config.params))
        self.assertNotIn(TOKEN, config.secrets.token)  # the stored text is the ciphertext


class AdminTests(EdlTestCase):
    def setUp(self):
        user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
        self.client.force_login(user)

    def add_url(self) -> str:
        return reverse("admin:exchange_sharingconfig_add") + f"?destination={self.destination.pk}&action=publish"

    def test_the_list_is_added_from_the_admin_with_write_only_credentials(self):
        chooser = self.client.get(reverse("admin:exchange_sharingconfig_add"))
        self.assertContains(chooser, "Publish as an external dynamic list")
        response = self.client.post(self.add_url(), {
            "name": "firewall urls", "enabled": "on", "rule": self.urls.pk, "sync_interval": 60,
            "share_existing": "on", "param_slug": "fw-urls", "param_url_format": "no_scheme",
            "param_username": "panos", "param_password": PASSWORD, "param_token": TOKEN,
        })
        self.assertEqual(response.status_code, 302, response.context and response.context["adminform"].form.errors)
        config = SharingConfig.objects.get(name="firewall urls")
        self.assertEqual((config.destination, config.action), (self.destination, "publish"))
        self.assertEqual(config.params["slug"], "fw-urls")
        self.assertEqual(config.get_secrets(), {"password": PASSWORD, "token": TOKEN})
        page = self.client.get(reverse("admin:exchange_sharingconfig_change", args=[config.pk]))
        self.assertContains(page, "/feeds/edl/fw-urls.txt")
        self.assertContains(page, "A value is stored. Leave blank to keep it.")
        for secret in (PASSWORD, TOKEN, config.secrets.token):
            self.assertNotContains(page, secret)

    def test_an_unprotected_list_is_refused_with_the_reason_on_the_page(self):
        response = self.client.post(self.add_url(), {
            "name": "open list", "enabled": "on", "rule": self.urls.pk, "sync_interval": 60,
            "param_slug": "open", "param_url_format": "no_scheme",
        })
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Protect the list with a token, or a username and password")
        self.assertFalse(SharingConfig.objects.exists())


class FirewallFetchTests(LiveServerTestCase):
    """A reader fetching over real HTTP, as a firewall does."""

    def test_a_firewall_fetches_its_list_with_basic_authentication(self):
        source = make_config("feed")
        destination = make_config("firewalls", connector="edl")
        rule = BusinessRule.objects.create(name="ips", expression="type = ipv4")
        ingest_batch(source, [Record("203.0.113.9"), Record("203.0.113.10"), Record("evil.example")],
                     timezone.now() - timedelta(minutes=1))
        run_share(make_list(rule, destination, slug="block-ips", username="pa-fw",
                            secrets={"password": PASSWORD}).pk)
        url = f"{self.live_server_url}/feeds/edl/block-ips.txt"
        answer = requests.get(url, auth=("pa-fw", PASSWORD), timeout=10)
        self.assertEqual(answer.status_code, 200)
        self.assertEqual(answer.text, "203.0.113.10\n203.0.113.9\n")
        self.assertEqual(requests.get(url, timeout=10).status_code, 401)
        self.assertEqual(requests.get(url, headers={"If-None-Match": answer.headers["ETag"]}, auth=("pa-fw", PASSWORD),
                                      timeout=10).status_code, 304)
