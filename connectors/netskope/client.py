"""Requests to one Netskope tenant's REST API, with every failure explained for a person.

Transient answers (429, 5xx, a dropped connection) are retried by the session (see
``connectors.http``: ``Retry-After``, exponential backoff with jitter, bounded); what reaches
this module after the retries is explained here: 401 names the token, 403 the missing scope,
a redirect or an HTML page the tenant URL.
"""

import logging
import time

import requests
from django.db import connections

from connectors.base import ConnectorError
from connectors.http import describe, new_session
from exchange.fields import reveal

log = logging.getLogger("cte.netskope")

ALERTS = "/api/v2/events/dataexport/alerts/"
URLLIST = "/api/v2/policy/urllist"
HASHLIST = "/api/v1/updateFileHashList"
TOKEN_PAGE = "Settings > Tools > REST API v2"
EXCERPT = 200


class MissingScope(ConnectorError):
    """The API v2 token works but may not use this endpoint (403)."""

    def __init__(self, message: str, scope: str):
        super().__init__(message, permanent=True)
        self.scope = scope


class TenantClient:
    """The tenant's API through ``session`` (proxy, SSL validation, retries already set)."""

    def __init__(self, tenant, session: requests.Session):
        self.tenant = tenant
        self.name = tenant.name
        self.base = tenant.url.rstrip("/")
        self.session = session

    def v2(self, method: str, path: str, *, scope: str, what: str, params: dict | None = None,
           body=None) -> requests.Response:
        """One API v2 request; ConnectorError for anything but an answer the caller reads
        (2xx, or 400 whose body says what the tenant refused)."""
        token = reveal(self.tenant.token)
        if not token:
            raise ConnectorError(f"tenant {self.name}: no API v2 token is set (Settings > Netskope tenants)",
                                 permanent=True)
        response = self._send(method, path, what, params=params, json=body,
                              headers={"Netskope-Api-Token": token})
        self._check(response, method, scope, what)
        return response

    def v1(self, path: str, *, what: str, body: dict) -> dict:
        """One API v1 request (the token goes in the JSON body, not in a URL a proxy logs);
        the v1 answer ``{"status": ..., ...}``."""
        token = reveal(self.tenant.v1_token)
        if not token:
            raise ConnectorError(f"tenant {self.name}: no API v1 token is set; {what} needs one "
                                 "(Settings > Netskope tenants)", permanent=True)
        response = self._send("POST", path, what, json={**body, "token": token})
        if response.status_code in (401, 403):
            raise ConnectorError(f"tenant {self.name} refused the API v1 token ({response.status_code}) while {what}: "
                                 "check the v1 token (Settings > Tools > REST API v1)", permanent=True)
        self._check(response, "POST", path, what)
        return self.json(response, what)

    def json(self, response: requests.Response, what: str):
        try:
            return response.json()
        except ValueError:
            raise ConnectorError(f"tenant {self.name} answered {what} with something that is not JSON "
                                 f"({_excerpt(response)}): check the tenant URL {self.base}", permanent=True) from None

    def _send(self, method: str, path: str, what: str, **kwargs) -> requests.Response:
        started = time.monotonic()
        try:
            response = self.session.request(method, self.base + path, allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            raise ConnectorError(f"tenant {self.name}: {what} failed: {describe(exc)}") from None
        log.debug("%s %s -> %s in %.2fs", method, path, response.status_code, time.monotonic() - started)
        return response

    def _check(self, response: requests.Response, method: str, scope: str, what: str) -> None:
        status = response.status_code
        if 200 <= status < 300 or status == 400:
            return
        if status == 401:
            raise ConnectorError(
                f"tenant {self.name} refused the API v2 token (401 Unauthorized) while {what}: the token is wrong, "
                f"expired or revoked; create one under {TOKEN_PAGE} and set it on the tenant", permanent=True)
        if status == 403:
            access = "read" if method == "GET" else "read and write"
            raise MissingScope(
                f"tenant {self.name}: the API v2 token lacks the scope {scope} ({access}) that {what} needs "
                f"(403 Forbidden): add that endpoint to the token under {TOKEN_PAGE}", scope)
        if 300 <= status < 400:
            raise ConnectorError(
                f"tenant {self.name}: {self.base} redirects to {response.headers.get('Location', '?')}: give the "
                "tenant's own address, https://<tenant>.goskope.com", permanent=True)
        if status == 404 and "json" not in response.headers.get("Content-Type", ""):
            raise ConnectorError(
                f"tenant {self.name}: {self.base} has no Netskope API ({method} {response.request.path_url} "
                "answered 404): check the tenant URL", permanent=True)
        raise ConnectorError(f"tenant {self.name} answered {status} {response.reason} while {what}"
                             f"{_retried(response)}: {_excerpt(response)}")


def _retried(response: requests.Response) -> str:
    retry = getattr(response.raw, "retries", None)
    count = len(getattr(retry, "history", ()) or ())
    notes = [f"after {count} {'retry' if count == 1 else 'retries'}"] if count else []
    if "Retry-After" in response.headers:
        notes.append(f"Retry-After: {response.headers['Retry-After']}")
    return f" ({', '.join(notes)})" if notes else ""


def _excerpt(response: requests.Response) -> str:
    text = " ".join(response.text.split())
    return (text if len(text) <= EXCERPT else text[:EXCERPT] + "…") or response.reason


def load_tenant(config):
    """``config``'s tenant and the proxy it goes through (None: direct). Safe in a pull's
    read-ahead thread: a database connection opened here for that is closed again."""
    from exchange.models import Settings, Tenant

    if not config.tenant_id:
        raise ConnectorError(f"{config.name} has no Netskope tenant: choose one", permanent=True)
    connection = connections[Tenant.objects.db]
    opened = connection.connection is None
    try:
        tenant = Tenant.objects.get(pk=config.tenant_id)
        proxy = Settings.load().proxy() if tenant.use_proxy else None
    finally:
        if opened and not connection.in_atomic_block:
            connection.close()
    return tenant, proxy


def route(session: requests.Session, proxy: str | None) -> requests.Session:
    """``session`` (a run's: SSL validation, timeouts, retries) sent the tenant's way: through
    the system proxy when the tenant uses it, direct otherwise."""
    session.proxies = {"http": proxy, "https": proxy} if proxy else {}
    return session


def tenant_session(tenant) -> requests.Session:
    """A session for ``tenant`` alone (its "Test connection"): the general SSL validation, the
    tenant's proxy choice, and few retries, since a person is waiting."""
    from exchange.models import Settings

    general = Settings.load()
    return route(new_session(verify=general.ssl_verify, retries=1, backoff=0.5, max_retry_after=10),
                 general.proxy() if tenant.use_proxy else None)
