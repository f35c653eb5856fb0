"""The one HTTP seam against real local servers: retries, Retry-After, timeouts, proxy and TLS."""

import base64
import datetime
import ipaddress
import os
import socket
import ssl
import tempfile
import time
import warnings
from functools import cache
from itertools import pairwise
from pathlib import Path
from unittest import mock

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.test import SimpleTestCase, TestCase, override_settings
from urllib3.exceptions import InsecureRequestWarning

from connectors.http import describe, new_session, session_for
from exchange.models import Settings
from tests.support.factories import make_config
from tests.support.httpserver import LocalServer, Reply, Seen

FAST = {"backoff": 0.05, "backoff_max": 1.0}  # real backoff arithmetic, test-sized waits


def gaps(hits: list[Seen]) -> list[float]:
    return [later.at - earlier.at for earlier, later in pairwise(hits)]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stall(seconds: float):
    def handler(seen: Seen) -> Reply:
        time.sleep(seconds)
        return Reply(200, "too late")

    return handler


def proxy_credentials(seen: Seen) -> str:
    scheme, _, encoded = seen.headers["Proxy-Authorization"].partition(" ")
    assert scheme == "Basic", scheme
    return base64.b64decode(encoded).decode()


@cache
def self_signed_pem() -> tuple[bytes, bytes]:
    """A certificate for 127.0.0.1 that no trust store knows, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def tls_context() -> ssl.SSLContext:
    cert_pem, key_pem = self_signed_pem()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "cert.pem").write_bytes(cert_pem)
        (Path(folder) / "key.pem").write_bytes(key_pem)
        context.load_cert_chain(Path(folder) / "cert.pem", Path(folder) / "key.pem")
    return context


class RetryTests(SimpleTestCase):
    def setUp(self):
        self.server = self.enterContext(LocalServer())

    def test_429_waits_for_retry_after_then_succeeds(self):
        self.server.route("/feed", Reply(429, "slow down", {"Retry-After": "1"}), Reply(200, "1.2.3.4"))

        response = new_session(**FAST).get(self.server.url("/feed"))

        self.assertEqual((response.status_code, response.text), (200, "1.2.3.4"))
        hits = self.server.hits("/feed")
        self.assertEqual(len(hits), 2)
        self.assertGreaterEqual(gaps(hits)[0], 1.0)

    def test_503_is_retried_with_growing_backoff(self):
        self.server.route("/feed", Reply(503), Reply(503), Reply(503), Reply(200, "1.2.3.4"))

        response = new_session(backoff=0.1).get(self.server.url("/feed"))

        self.assertEqual((response.status_code, response.text), (200, "1.2.3.4"))
        waits = gaps(self.server.hits("/feed"))
        self.assertEqual(len(waits), 3)
        # urllib3 retries the first failure at once, then waits backoff * 2**(n-1) plus jitter.
        self.assertGreaterEqual(waits[1], 0.2)
        self.assertGreaterEqual(waits[2], 0.4)
        self.assertGreater(waits[2], waits[1])

    def test_retry_after_beyond_the_cap_is_shortened(self):
        self.server.route("/feed", Reply(429, headers={"Retry-After": "30"}), Reply(200, "1.2.3.4"))

        started = time.monotonic()
        with self.assertLogs("cte.http", "WARNING") as logs:
            response = new_session(max_retry_after=0.5, **FAST).get(self.server.url("/feed"))

        self.assertEqual(response.status_code, 200)
        self.assertLess(time.monotonic() - started, 5)
        self.assertGreaterEqual(gaps(self.server.hits("/feed"))[0], 0.5)
        self.assertIn("Retry-After 30s", logs.output[0])
        self.assertIn("capped", logs.output[0])

    def test_exhausted_retries_hand_back_the_last_answer(self):
        self.server.route(
            "/feed", Reply(503, "busy"), Reply(503, "still busy"), Reply(502, "gateway down"), Reply(200, "unreached")
        )

        response = new_session(retries=2, **FAST).get(self.server.url("/feed"))

        self.assertEqual((response.status_code, response.text), (502, "gateway down"))
        self.assertEqual(len(self.server.hits("/feed")), 3)

    def test_post_is_retried_on_429(self):
        self.server.route("/push", Reply(429, "rate limited"), Reply(201, "stored"))

        response = new_session(**FAST).post(self.server.url("/push"), json={"iocs": ["1.2.3.4"]})

        self.assertEqual((response.status_code, response.text), (201, "stored"))
        hits = self.server.hits("/push")
        self.assertEqual([seen.method for seen in hits], ["POST", "POST"])
        self.assertEqual(hits[1].body, b'{"iocs": ["1.2.3.4"]}')

    def test_client_errors_are_not_retried(self):
        self.server.route("/feed", Reply(401, "bad token"), Reply(200, "unreached"))

        response = new_session(**FAST).get(self.server.url("/feed"))

        self.assertEqual((response.status_code, response.text), (401, "bad token"))
        self.assertEqual(len(self.server.hits("/feed")), 1)


class TransportFailureTests(SimpleTestCase):
    def test_stalled_server_times_out_with_the_default_timeout(self):
        server = self.enterContext(LocalServer())
        server.route("/feed", stall(1.5))

        started = time.monotonic()
        with override_settings(CTE_HTTP_TIMEOUT=0.3), self.assertRaises(requests.ReadTimeout) as caught:
            new_session(**FAST).get(server.url("/feed"))

        self.assertLess(time.monotonic() - started, 1.2)
        self.assertEqual(describe(caught.exception), "the server did not answer in time")

    def test_timed_out_post_is_not_sent_again(self):
        server = self.enterContext(LocalServer())
        server.route("/push", stall(1.5))

        with self.assertRaises(requests.ReadTimeout) as caught:
            new_session(timeout=0.3, retries=3, **FAST).post(server.url("/push"), json={"iocs": ["1.2.3.4"]})

        self.assertEqual(describe(caught.exception), "the server did not answer in time")
        self.assertEqual(len(server.hits("/push")), 1)

    def test_closed_port_cannot_connect(self):
        with self.assertRaises(requests.ConnectionError) as caught:
            new_session(retries=1, **FAST).get(f"http://127.0.0.1:{closed_port()}/feed")

        message = describe(caught.exception)
        self.assertTrue(message.startswith("cannot connect: "), message)
        self.assertIn("refused", message.lower())


class ProxyTests(SimpleTestCase):
    def setUp(self):
        self.proxy = self.enterContext(LocalServer())

    def test_requests_go_through_the_proxy_with_its_credentials(self):
        # The feed host does not resolve: only a proxy can answer for it.
        self.proxy.route("http://feed.invalid/list.txt", Reply(200, "1.2.3.4"))
        session = new_session(proxy=f"http://user:p%40ss@127.0.0.1:{self.proxy.httpd.server_port}")

        response = session.get("http://feed.invalid/list.txt")

        self.assertEqual(response.text, "1.2.3.4")
        [seen] = self.proxy.requests
        self.assertEqual(seen.path, "http://feed.invalid/list.txt")
        self.assertEqual(proxy_credentials(seen), "user:p@ss")

    def test_unreachable_proxy_is_named(self):
        session = new_session(proxy=f"http://127.0.0.1:{closed_port()}", retries=0)

        with self.assertRaises(requests.exceptions.ProxyError) as caught:
            session.get("http://feed.invalid/list.txt")

        self.assertTrue(describe(caught.exception).startswith("the proxy refused or failed the connection"))

    def test_environment_proxy_is_ignored(self):
        target = self.enterContext(LocalServer())
        target.route("/list.txt", Reply(200, "direct"))
        self.proxy.route(target.url("/list.txt"), Reply(200, "intercepted"))
        environment = {
            "HTTP_PROXY": self.proxy.base_url,
            "http_proxy": self.proxy.base_url,
            "NO_PROXY": "",
            "no_proxy": "",
        }

        with mock.patch.dict(os.environ, environment):
            response = new_session().get(target.url("/list.txt"))

        self.assertEqual(response.text, "direct")
        self.assertEqual(self.proxy.requests, [])


class TLSTests(SimpleTestCase):
    def setUp(self):
        self.server = self.enterContext(LocalServer(tls=tls_context()))
        self.server.route("/feed", Reply(200, "1.2.3.4"))
        self.enterContext(warnings.catch_warnings())
        warnings.simplefilter("ignore", InsecureRequestWarning)

    def test_self_signed_certificate_is_rejected_and_explained(self):
        started = time.monotonic()
        with self.assertRaises(requests.exceptions.SSLError) as caught:
            new_session(retries=4, backoff=1.0).get(self.server.url("/feed"))
        self.assertLess(time.monotonic() - started, 1.0)  # not retried: a certificate error is not transient

        message = describe(caught.exception)
        self.assertTrue(message.startswith("TLS failed: certificate verify failed: "), message)
        self.assertIn("self", message)  # "self-signed certificate" (OpenSSL 1.1: "self signed")
        self.assertNotIn("_ssl.c", message)
        self.assertEqual(self.server.requests, [])

    def test_without_validation_the_server_is_read(self):
        response = new_session(verify=False).get(self.server.url("/feed"))

        self.assertEqual(response.text, "1.2.3.4")


# No retries: the proxy tests below talk to closed ports on purpose.
@override_settings(CTE_HTTP_RETRIES=0)
class SessionForTests(TestCase):
    def configure(self, **fields) -> None:
        general = Settings.load()
        for name, value in fields.items():
            setattr(general, name, value)
        general.save()

    def test_use_proxy_sends_through_the_general_proxy(self):
        target = self.enterContext(LocalServer())
        proxy = self.enterContext(LocalServer())
        target.route("/list.txt", Reply(200, "direct"))
        proxy.route(target.url("/list.txt"), Reply(200, "via proxy"))
        self.configure(proxy_url=proxy.base_url, proxy_username="user", proxy_password="p@ss")
        proxied = make_config("proxied", use_proxy=True)
        direct = make_config("direct", use_proxy=False)

        self.assertEqual(session_for(proxied).get(target.url("/list.txt")).text, "via proxy")
        self.assertEqual(session_for(direct).get(target.url("/list.txt")).text, "direct")
        [seen] = proxy.requests
        self.assertEqual(proxy_credentials(seen), "user:p@ss")
        self.assertEqual(len(target.requests), 1)

    def test_ssl_validation_is_inherited_unless_the_configuration_chooses(self):
        server = self.enterContext(LocalServer(tls=tls_context()))
        server.route("/feed", Reply(200, "1.2.3.4"))
        self.enterContext(warnings.catch_warnings())
        warnings.simplefilter("ignore", InsecureRequestWarning)
        cases = [(True, None, False), (True, False, True), (False, None, True), (False, True, False)]

        for general, chosen, served in cases:
            with self.subTest(general=general, config=chosen):
                self.configure(ssl_verify=general)
                config = make_config(f"feed-{general}-{chosen}", ssl_verify=chosen)
                try:
                    text = session_for(config).get(server.url("/feed")).text
                except requests.exceptions.SSLError as exc:
                    text = describe(exc)
                if served:
                    self.assertEqual(text, "1.2.3.4")
                else:
                    self.assertTrue(text.startswith("TLS failed: "), text)
