"""The webhook destination against a real local receiver: batches, signatures, retries and
what each kind of answer does to the values sent."""

import hashlib
import hmac
import json
import socket
import time
from datetime import UTC, datetime

from django.test import TestCase

from connectors import registry
from connectors.base import ConnectorError, Context, Outbound, PushResult
from connectors.http import new_session, session_for
from connectors.webhook import Webhook, WebhookForm
from exchange.models import PluginConfig
from tests.support.factories import make_config
from tests.support.httpserver import LocalServer, Reply, Seen

SECRET = "correct horse battery staple"


def outbound(*values: str) -> list[Outbound]:
    return [Outbound("domain", value, reputation=8, severity="high", tags=["phishing"],
                     first_seen=datetime(2024, 5, 1, 10, tzinfo=UTC)) for value in values]


def domains(count: int) -> list[str]:
    return [f"bad{number}.example.com" for number in range(1, count + 1)]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def expected_signature(seen: Seen, secret: str = SECRET) -> str:
    """The documented scheme, recomputed as a receiver would: timestamp, a dot, the raw body."""
    signed = seen.headers["X-CTE-Timestamp"].encode() + b"." + seen.body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


class WebhookTestCase(TestCase):
    def setUp(self):
        self.server = LocalServer()
        self.server.__enter__()
        self.addCleanup(self.server.__exit__, None, None, None)
        self.url = self.server.url("/hook")

    def config(self, url: str | None = None, **values) -> PluginConfig:
        """A configuration saved as the admin saves it: the form's cleaned data, the secret apart."""
        cleaned = Webhook.clean_settings({"url": url or self.url, **values})
        secret = cleaned.pop("secret")
        return make_config(name="soar", connector="webhook", settings=cleaned,
                           secrets={"secret": secret} if secret else None)

    def ctx(self, config: PluginConfig, retries: int = 3) -> Context:
        session = new_session(retries=retries, backoff=0.01, max_retry_after=2)
        return Context(config=config, settings=dict(config.settings), secrets=config.get_secrets(), session=session)

    def push(self, config: PluginConfig, values: list[str], retries: int = 3, **params) -> PushResult:
        connector = config.get_connector()
        action = connector.action("send", config.settings)
        return connector.push(self.ctx(config, retries), action, params, outbound(*values))

    def bodies(self) -> list[dict]:
        return [json.loads(seen.body) for seen in self.server.hits("/hook")]

    def sent_values(self) -> list[list[str]]:
        return [[item["value"] for item in body["indicators"]] for body in self.bodies()]


class PushTests(WebhookTestCase):
    def test_indicators_go_in_batches_of_the_configured_size_and_are_all_accepted(self):
        self.server.route("/hook", Reply(200, '{"ok": true}'))
        config = self.config(batch_size=3)
        values = domains(7)

        result = self.push(config, values, sharing="Phishing to SOAR", event_tag="soc-eu")

        self.assertEqual(self.sent_values(), [values[0:3], values[3:6], values[6:7]])
        self.assertEqual((result.accepted, result.failed), (values, {}))
        for seen, body in zip(self.server.hits("/hook"), self.bodies(), strict=True):
            self.assertEqual(seen.method, "POST")
            self.assertEqual(seen.headers["Content-Type"], "application/json")
            self.assertEqual((body["event"], body["source"], body["sharing"], body["label"]),
                             ("indicators.shared", "cte", "Phishing to SOAR", "soc-eu"))
            self.assertLess(abs(datetime.fromisoformat(body["sent_at"]).timestamp() - time.time()), 10)
        self.assertEqual(self.bodies()[0]["indicators"][0], {
            "type": "domain", "value": "bad1.example.com", "reputation": 8, "severity": "high",
            "tags": ["phishing"], "comments": "", "first_seen": "2024-05-01T10:00:00+00:00",
            "last_seen": None, "expires_at": None,
        })

    def test_the_share_run_hands_over_batches_of_the_configured_size(self):
        connector = registry.get("webhook")
        action = connector.action("send", self.config(batch_size=250).settings)

        self.assertEqual((action.batch_items, action.mode, action.retracts, action.target_param),
                         (250, "append", True, None))
        self.assertEqual(connector.action("send").batch_items, 500)
        self.assertFalse(connector.can_pull)

    def test_extra_headers_are_sent_with_every_batch(self):
        self.server.route("/hook", Reply(204))
        config = self.config(headers="X-Team: soc\n\nX-Env: prod ")

        self.push(config, domains(2))

        seen = self.server.hits("/hook")[0]
        self.assertEqual((seen.headers["X-Team"], seen.headers["X-Env"]), ("soc", "prod"))

    def test_an_empty_push_sends_nothing(self):
        result = self.push(self.config(), [])

        self.assertEqual((result.accepted, result.failed, self.server.requests), ([], {}, []))


class SignatureTests(WebhookTestCase):
    def setUp(self):
        super().setUp()
        self.server.route("/hook", Reply(200))

    def test_the_signature_verifies_with_the_documented_scheme(self):
        self.push(self.config(secret=SECRET, batch_size=2), domains(3))

        hits = self.server.hits("/hook")
        self.assertEqual(len(hits), 2)
        for seen in hits:
            self.assertEqual(seen.headers["X-CTE-Signature"], expected_signature(seen))
            self.assertLess(abs(int(seen.headers["X-CTE-Timestamp"]) - time.time()), 10)
        # Another key, or the other batch's body, does not verify.
        self.assertNotEqual(hits[0].headers["X-CTE-Signature"], expected_signature(hits[0], "wrong"))
        self.assertNotEqual(hits[0].headers["X-CTE-Signature"], hits[1].headers["X-CTE-Signature"])

    def test_the_signature_goes_in_the_header_the_receiver_names(self):
        self.push(self.config(secret=SECRET, signature_header="X-Hub-Signature-256"), domains(1))

        seen = self.server.hits("/hook")[0]
        self.assertEqual(seen.headers["X-Hub-Signature-256"], expected_signature(seen))
        self.assertNotIn("X-CTE-Signature", seen.headers)

    def test_without_a_secret_nothing_is_signed(self):
        self.push(self.config(), domains(1))

        seen = self.server.hits("/hook")[0]
        self.assertNotIn("X-CTE-Signature", seen.headers)
        self.assertNotIn("X-CTE-Timestamp", seen.headers)


class RetryTests(WebhookTestCase):
    def test_a_busy_receiver_gets_the_wait_its_retry_after_asks_for(self):
        def busy_every_other_request(seen: Seen) -> Reply:
            if len(self.server.requests) % 2:
                return Reply(503, "busy", {"Retry-After": "1"})
            return Reply(200)

        self.server.route("/hook", busy_every_other_request)
        values = domains(4)

        result = self.push(self.config(secret=SECRET, batch_size=2), values)

        self.assertEqual((result.accepted, result.failed), (values, {}))
        hits = self.server.hits("/hook")
        self.assertEqual(len(hits), 4)
        for refused, retried in (hits[0:2], hits[2:4]):
            self.assertGreaterEqual(retried.at - refused.at, 0.95)
            self.assertLess(retried.at - refused.at, 1.8)
            # The retry is the identical request: the signature still verifies.
            self.assertEqual(retried.body, refused.body)
            self.assertEqual(retried.headers["X-CTE-Signature"], expected_signature(retried))

    def test_a_receiver_still_rate_limiting_after_the_retries_fails_the_run(self):
        self.server.route("/hook", Reply(429, "slow down", {"Retry-After": "1"}))

        with self.assertRaises(ConnectorError) as caught:
            self.push(self.config(), domains(2), retries=1)

        self.assertEqual(str(caught.exception),
                         f"POST {self.url} answered 429 Too Many Requests (Retry-After: 1) after 1 retry: slow down")
        self.assertFalse(caught.exception.permanent)
        self.assertEqual(len(self.server.hits("/hook")), 2)


class ErrorTests(WebhookTestCase):
    def test_a_persistent_server_error_fails_the_run_to_be_tried_again(self):
        self.server.route("/hook", Reply(500, "<h1>Database\n  is down</h1>"))

        with self.assertRaises(ConnectorError) as caught:
            self.push(self.config(), domains(2))

        self.assertEqual(str(caught.exception), f"POST {self.url} answered 500 Internal Server Error "
                                                "after 3 retries: <h1>Database is down</h1>")
        self.assertFalse(caught.exception.permanent)
        self.assertEqual(len(self.server.hits("/hook")), 4)

    def test_refused_credentials_or_a_wrong_url_disable_the_configuration(self):
        config = self.config()
        for status, advice in ((401, "check the secret"), (403, "check the secret"), (404, "check the URL")):
            with self.subTest(status=status):
                self.server.requests.clear()
                self.server.route("/hook", Reply(status, "no"))

                with self.assertRaises(ConnectorError) as caught:
                    self.push(config, domains(2))

                self.assertTrue(caught.exception.permanent)
                self.assertIn(f"POST {self.url} answered {status}: ", str(caught.exception))
                self.assertIn(advice, str(caught.exception))
                self.assertEqual(len(self.server.requests), 1)  # not retried

    def test_a_batch_the_receiver_cannot_process_fails_with_its_reason(self):
        self.server.route("/hook", Reply(422, '{"error": "unknown field \\"expires_at\\""}'))
        values = domains(3)

        result = self.push(self.config(), values)

        self.assertEqual(result.accepted, [])
        self.assertEqual(result.failed, dict.fromkeys(values, 'HTTP 422: {"error": "unknown field \\"expires_at\\""}'))
        self.assertEqual(len(self.server.requests), 1)

    def test_a_batch_too_large_says_to_lower_the_batch_size(self):
        self.server.route("/hook", Reply(413, "Payload Too Large"))

        result = self.push(self.config(batch_size=3), domains(3))

        self.assertEqual(set(result.failed.values()), {
            "HTTP 413: the receiver finds a batch of 3 indicators too large; set a smaller batch size "
            "(Payload Too Large)"
        })

    def test_values_the_receiver_refuses_fail_with_its_reasons(self):
        values = domains(4)
        answers = {
            "object": {"rejected": {values[1]: "on our allow-list"}},
            "list": {"rejected": [{"value": values[1], "reason": "on our allow-list"},
                                  {"value": "never-sent.example.com", "reason": "ignored"}]},
        }
        config = self.config()
        for form, answer in answers.items():
            with self.subTest(form=form):
                self.server.route("/hook", Reply(200, json.dumps(answer)))

                result = self.push(config, values)

                self.assertEqual(result.accepted, [values[0], values[2], values[3]])
                self.assertEqual(result.failed, {values[1]: "on our allow-list"})

    def test_a_later_batch_failing_keeps_the_earlier_batches_accepted(self):
        self.server.route("/hook", Reply(200), Reply(500, "down"))
        values = domains(5)

        result = self.push(self.config(batch_size=2), values, retries=0)

        self.assertEqual(result.accepted, values[:2])
        self.assertEqual(result.failed, dict.fromkeys(
            values[2:], f"not sent: POST {self.url} answered 500 Internal Server Error: down"))

    def test_a_redirect_is_not_followed(self):
        self.server.route("/hook", Reply(308, "", {"Location": "http://127.0.0.1:9/elsewhere"}))

        with self.assertRaisesMessage(ConnectorError, "answered 308, redirecting to http://127.0.0.1:9/elsewhere: "
                                                      "set the URL to the final address"):
            self.push(self.config(secret=SECRET), domains(1))

        self.assertEqual(len(self.server.requests), 1)


class RetractTests(WebhookTestCase):
    def test_retract_sends_the_retracted_event_and_reports_what_was_refused(self):
        values = domains(3)
        self.server.route("/hook", Reply(200, json.dumps({"rejected": {values[2]: "not on the list"}})))
        config = self.config(secret=SECRET)
        connector = config.get_connector()

        result = connector.retract(self.ctx(config), connector.action("send", config.settings),
                                   {"sharing": "Phishing to SOAR"}, outbound(*values))

        body = self.bodies()[0]
        self.assertEqual((body["event"], body["sharing"]), ("indicators.retracted", "Phishing to SOAR"))
        self.assertEqual(self.sent_values(), [values])
        self.assertEqual((result.accepted, result.failed), (values[:2], {values[2]: "not on the list"}))
        seen = self.server.hits("/hook")[0]
        self.assertEqual(seen.headers["X-CTE-Signature"], expected_signature(seen))


class TestConnectionTests(WebhookTestCase):
    def validate(self, config: PluginConfig, session=None) -> str:
        """What the admin's "Test connection" action runs."""
        ctx = Context(config=config, settings=dict(config.settings), secrets=config.get_secrets(),
                      session=session or session_for(config))
        return config.get_connector().validate(ctx)

    def test_a_receiver_that_answers_is_reported_with_what_was_checked(self):
        self.server.route("/hook", Reply(200, "pong"))

        message = self.validate(self.config(secret=SECRET))

        self.assertEqual(message, f"POST {self.url} answered 200; requests are signed in X-CTE-Signature")
        seen = self.server.hits("/hook")[0]
        self.assertEqual(json.loads(seen.body)["event"], "ping")
        self.assertEqual(seen.headers["X-CTE-Signature"], expected_signature(seen))

    def test_a_closed_port_is_a_clear_error(self):
        url = f"http://127.0.0.1:{closed_port()}/hook"

        with self.assertRaises(ConnectorError) as caught:
            self.validate(self.config(url), new_session(retries=1, backoff=0.01))

        self.assertRegex(str(caught.exception), rf"^POST {url}: cannot connect: .*[Cc]onnection refused")
        self.assertFalse(caught.exception.permanent)

    def test_a_wrong_secret_is_named(self):
        self.server.route("/hook", Reply(401, "bad signature"))

        with self.assertRaises(ConnectorError) as caught:
            self.validate(self.config(secret="wrong"))

        self.assertTrue(caught.exception.permanent)
        self.assertIn("answered 401: the receiver wants other credentials: check the secret", str(caught.exception))


class FormTests(TestCase):
    def errors(self, **data) -> dict:
        form = WebhookForm(data={"url": "https://soar.example.com/hooks/cte", **data})
        form.is_valid()
        return form.errors

    def test_a_url_alone_gets_the_defaults(self):
        cleaned = Webhook.clean_settings({"url": "https://soar.example.com/hooks/cte"})

        self.assertEqual((cleaned["batch_size"], cleaned["signature_header"], cleaned["headers"], cleaned["secret"]),
                         (500, "X-CTE-Signature", "", ""))

    def test_only_http_and_https_urls(self):
        self.assertEqual(self.errors(url="ftp://soar.example.com/hook")["url"], ["Give an http:// or https:// URL."])
        self.assertEqual(self.errors(url="http://soar.example.com/hook"), {})

    def test_the_batch_size_is_between_1_and_10000(self):
        self.assertIn("batch_size", self.errors(batch_size="0"))
        self.assertIn("batch_size", self.errors(batch_size="10001"))
        self.assertEqual(self.errors(batch_size="10000"), {})

    def test_extra_headers_are_name_value_lines(self):
        self.assertEqual(self.errors(headers="X-Team: soc\nno colon here")["headers"],
                         ['line 2: write "Name: value" (a name of letters, digits and -)'])
        self.assertEqual(self.errors(headers="X-Team: soc\r\nX-Env: prod"), {})

    def test_extra_headers_cannot_replace_the_ones_the_connector_sets(self):
        for name in ("Content-Type", "x-cte-timestamp", "X-CTE-Signature"):
            with self.subTest(name=name):
                self.assertEqual(self.errors(headers=f"{name}: x")["headers"],
                                 [f"{name} is set by the connector itself."])
        self.assertIn("headers", self.errors(signature_header="X-Sig", headers="X-Sig: forged"))

    def test_the_admin_lists_it_as_a_destination(self):
        self.assertIn(("webhook", "Webhook"), registry.choices())
        self.assertEqual(Webhook.secret_fields, ("secret",))
