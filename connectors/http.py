"""The one HTTP seam: every connector request goes through a session built here.

It applies the system proxy, SSL validation, a timeout on every request, and retries of
connection failures, 429 and 5xx answers with exponential backoff and jitter, honouring
``Retry-After`` up to a bound (urllib3's ``Retry``).
"""

import logging
import re
import ssl

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger("cte.http")

USER_AGENT = "CTE-threat-exchange/1.0"
RETRY_STATUSES = (429, 500, 502, 503, 504)


class BoundedRetry(Retry):
    """``Retry`` whose wait for a ``Retry-After`` never exceeds ``max_retry_after`` seconds,
    so a server asking for an hour cannot hold a worker for an hour."""

    max_retry_after: float = 300.0

    def __init__(self, *args, max_retry_after: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if max_retry_after is not None:
            self.max_retry_after = max_retry_after

    def new(self, **kwargs):
        retry = super().new(**kwargs)
        retry.max_retry_after = self.max_retry_after
        return retry

    def get_retry_after(self, response):
        seconds = super().get_retry_after(response)
        if seconds is None:
            return None
        if seconds > self.max_retry_after:
            log.warning("Retry-After %.0fs from %s capped at %.0fs", seconds, response.geturl(), self.max_retry_after)
        return min(seconds, self.max_retry_after)


class Session(requests.Session):
    """A ``requests.Session`` with a default timeout: no request may hang a worker."""

    def __init__(self, timeout: float | tuple[float, float]):
        super().__init__()
        self.timeout = timeout

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def new_session(
    *,
    proxy: str | None = None,
    verify: bool = True,
    timeout: float | None = None,
    retries: int | None = None,
    backoff: float = 1.0,
    backoff_max: float = 60.0,
    max_retry_after: float = 300.0,
) -> Session:
    read_timeout = timeout if timeout is not None else settings.CTE_HTTP_TIMEOUT
    session = Session(timeout=(min(10.0, read_timeout), read_timeout))
    retry = BoundedRetry(
        total=settings.CTE_HTTP_RETRIES if retries is None else retries,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,  # rate limits and gateway errors happen before a write is applied
        # A read error or timeout comes after the request was sent: a retry could apply a write
        # twice and multiplies the wait, and urllib3 would turn the last ReadTimeout into a
        # ConnectionError ("cannot connect") once retries run out.
        read=False,
        # "Other" errors are TLS failures (a bad or self-signed certificate): retrying cannot
        # fix them, and a person testing a connection should hear about it at once.
        other=0,
        backoff_factor=backoff,
        backoff_jitter=backoff / 2,
        backoff_max=backoff_max,
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer goes back to the connector, which explains it
        max_retry_after=max_retry_after,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # Only the configured proxy applies: the worker's environment must not change where data goes.
    session.trust_env = False
    if proxy:
        session.proxies = {"http": proxy, "https": proxy}
    session.verify = verify
    session.headers["User-Agent"] = USER_AGENT
    return session


def session_for(config) -> Session:
    """A session with the general settings' proxy and SSL default, as ``config`` chooses them."""
    from exchange.models import Settings

    general = Settings.load()
    verify = general.ssl_verify if config.ssl_verify is None else config.ssl_verify
    return new_session(proxy=general.proxy() if config.use_proxy else None, verify=verify)


def describe(exc: requests.RequestException) -> str:
    """A one-line explanation of a transport failure for a person to act on."""
    if isinstance(exc, requests.exceptions.ProxyError):
        return f"the proxy refused or failed the connection ({_root(exc)})"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS failed: {_root(exc)} (turn off SSL validation only for a host you trust)"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "the connection timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "the server did not answer in time"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"cannot connect: {_root(exc)}"
    return str(exc)


def _root(exc: BaseException) -> str:
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    if isinstance(exc, ssl.SSLError):
        # "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: ... (_ssl.c:1006)"
        return re.sub(r"^\[SSL: \w+\] | \(_ssl\.c:\d+\)$", "", str(exc))
    return str(exc).split(": ", 1)[-1] if ": " in str(exc) else str(exc)
