"""TAXII 2.0 and 2.1 through taxii2-client, over the run's HTTP session.

taxii2-client builds its own ``requests.Session``; ours carries the proxy, the SSL choice, the
timeouts and the retries (``connectors.http``), so the client's connection is given a stand-in
that sends through ours, with this server's credentials. taxii2-client hands back only the
body of an answer, and the paging header ``X-TAXII-Date-Added-Last`` lives on the answer: the
stand-in keeps the last one.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin

import requests
import requests.auth
from taxii2client import exceptions as taxii_errors
from taxii2client import v20, v21
from taxii2client.common import _HTTPConnection

from connectors.base import ConnectorError
from connectors.http import USER_AGENT, describe

MEDIA_21 = "application/taxii+json;version=2.1"
MEDIA_20 = "application/vnd.oasis.taxii+json; version=2.0"
STIX_20 = "application/vnd.oasis.stix+json; version=2.0"
EXCERPT = 200
# An answer to these means the request itself was wrong: a `next` token the server forgot.
TOKEN_GONE = (400, 404, 410, 416)


class BearerAuth(requests.auth.AuthBase):
    def __init__(self, token: str):
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def auth_for(settings: dict, secrets: dict) -> requests.auth.AuthBase | None:
    kind = settings.get("auth") or "none"
    if kind == "basic":
        return requests.auth.HTTPBasicAuth(settings.get("username") or "", secrets.get("password") or "")
    if kind == "bearer":
        return BearerAuth(secrets.get("token") or "")
    return None


class _Transport:
    """What taxii2-client takes for a session: ours, with this server's credentials, keeping
    the last answer."""

    def __init__(self, session: requests.Session, auth):
        self.session = session
        self.auth = auth
        self.last: requests.Response | None = None

    def _keep(self, response: requests.Response) -> requests.Response:
        self.last = response
        return response

    def get(self, url, **kwargs):
        return self._keep(self.session.get(url, auth=self.auth, **kwargs))

    def post(self, url, **kwargs):
        return self._keep(self.session.post(url, auth=self.auth, **kwargs))

    def delete(self, url, **kwargs):
        return self._keep(self.session.delete(url, auth=self.auth, **kwargs))

    def close(self):
        pass  # the run's session outlives this client


class Connection(_HTTPConnection):
    """taxii2-client's connection, sending through the run's session."""

    def __init__(self, session: requests.Session, auth, version: str):
        super().__init__(user_agent=USER_AGENT, version=version)
        super().close()  # the session taxii2-client made for itself is not used
        self.session = _Transport(session, auth)

    @property
    def last(self) -> requests.Response | None:
        return self.session.last


def retried(response: requests.Response | None) -> bool:
    """True when the session had to send the request more than once to get this answer."""
    retry = getattr(getattr(response, "raw", None), "retries", None)
    return bool(getattr(retry, "history", ()))


def excerpt(response: requests.Response) -> str:
    try:
        body = response.json()
        text = " ".join(str(body.get(key)) for key in ("title", "description") if body.get(key))
    except (ValueError, AttributeError):
        text = " ".join(response.text.split())
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "…"


_PERMANENT = {
    401: "the server wants other credentials: check the authentication, username, password or token",
    403: "these credentials may not do that: check the account's permissions on the server",
    404: "nothing there: check the URL (an API root or discovery URL) and the collection",
    406: "the server does not speak this TAXII version: choose the other version, or Detect",
    415: "the server does not accept this TAXII version's media type: choose the other version, or Detect",
}


def failure(exc: Exception, what: str) -> ConnectorError:
    """A ConnectorError that says what went wrong with ``what`` and what to do about it."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        response = exc.response
        detail = excerpt(response)
        detail = f" ({detail})" if detail else ""
        status = response.status_code
        if status in _PERMANENT:
            return ConnectorError(f"{what}: HTTP {status}{detail}: {_PERMANENT[status]}", permanent=True)
        return ConnectorError(f"{what}: HTTP {status} {response.reason}{detail}")
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        return ConnectorError(f"{what}: not a TAXII server: the answer is not JSON", permanent=True)
    if isinstance(exc, requests.RequestException):
        return ConnectorError(f"{what}: {describe(exc)}")
    if isinstance(exc, taxii_errors.AccessError):
        return ConnectorError(f"{what}: {exc}", permanent=True)
    if isinstance(exc, taxii_errors.TAXIIServiceException):
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return ConnectorError(f"{what}: not a TAXII server answer: {first_line}", permanent=True)
    raise exc


@contextmanager
def explained(what: str):
    """Turn transport, HTTP and taxii2-client errors into ConnectorErrors about ``what``."""
    try:
        yield
    except ConnectorError:
        raise
    except (requests.RequestException, taxii_errors.TAXIIServiceException) as exc:
        raise failure(exc, what) from None


@dataclass
class Server:
    """Where the API root is and which TAXII version it speaks."""

    root_url: str
    version: str  # "2.0" or "2.1"
    discovery: dict | None = None  # the discovery answer, when the URL given was a discovery URL

    @property
    def module(self):
        return v21 if self.version == "2.1" else v20


def locate(session: requests.Session, auth, url: str, version: str = "detect") -> Server:
    """The API root behind ``url`` (an API root or a discovery URL) and its TAXII version."""
    versions = ("2.1", "2.0") if version == "detect" else (version,)
    for index, candidate in enumerate(versions):
        media = MEDIA_21 if candidate == "2.1" else MEDIA_20
        with explained(f"GET {url}"):
            response = session.get(url, auth=auth, headers={"Accept": media})
        content_type = response.headers.get("Content-Type", "").replace(" ", "").lower()
        if response.status_code in (406, 415) and index + 1 < len(versions):
            continue
        if index + 1 < len(versions) and content_type.startswith("application/vnd.oasis.taxii+json"):
            continue  # a TAXII 2.0 server answered a 2.1 request in its own media type
        with explained(f"GET {url}"):
            response.raise_for_status()
            body = response.json()
        return _server(url, candidate, body, content_type)
    raise ConnectorError(f"GET {url}: the server speaks neither TAXII 2.1 nor 2.0", permanent=True)


def _server(url: str, version: str, body, content_type: str) -> Server:
    if not isinstance(body, dict) or "taxii" not in content_type and not ({"api_roots", "versions"} & set(body)):
        raise ConnectorError(f"GET {url}: not a TAXII server (it answered {content_type or 'no content type'})",
                             permanent=True)
    if "api_roots" in body or "default" in body:
        roots = [root for root in body.get("api_roots") or [] if isinstance(root, str)]
        chosen = body.get("default") if isinstance(body.get("default"), str) else (roots[0] if roots else None)
        if not chosen:
            raise ConnectorError(f"GET {url}: the discovery answer lists no API root: give an API root URL",
                                 permanent=True)
        return Server(_slash(urljoin(url, chosen)), version, body)
    if "title" not in body:
        raise ConnectorError(f"GET {url}: not a TAXII API root or discovery answer (no title, no api_roots)",
                             permanent=True)
    return Server(_slash(url), version)


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


@dataclass
class Page:
    """One answer of a Get Objects request."""

    objects: list[dict]
    more: bool
    next: str | None  # the token (2.1) or the next start offset (2.0) for the following page
    first: str | None  # X-TAXII-Date-Added-First
    last: str | None  # X-TAXII-Date-Added-Last
    retried: bool = False  # the session retried the request: a stateful server may have moved on


def fetch(collection, connection: Connection, version: str, added_after: str, limit: int,
          token: str | None) -> Page:
    """One page of ``collection``'s objects added after ``added_after``; HTTPError as it comes."""
    if version == "2.0":
        return _fetch20(collection, connection, added_after, limit, int(token or 0))
    filters = {"added_after": added_after, "limit": limit}
    if token:
        filters["next"] = token  # medallion wants the first page's filters and a limit with it
    envelope = collection.get_objects(**filters)
    response = connection.last
    return Page(
        objects=[obj for obj in (envelope.get("objects") or []) if isinstance(obj, dict)],
        more=envelope.get("more") is True, next=envelope.get("next") or None,
        first=response.headers.get("X-TAXII-Date-Added-First"), last=response.headers.get("X-TAXII-Date-Added-Last"),
        retried=retried(response),
    )


def _fetch20(collection, connection: Connection, added_after: str, limit: int, start: int) -> Page:
    # TAXII 2.0 pages with a Range header and answers with Content-Range ("items 0-99/250").
    try:
        response = collection.get_objects(start=start, per_request=limit, added_after=added_after)
    except requests.HTTPError as exc:
        if exc.response is not None and exc.response.status_code == 416:  # asked past the end
            return Page([], False, None, None, None)
        raise
    objects = [obj for obj in (response.json().get("objects") or []) if isinstance(obj, dict)]
    more = False
    content_range = response.headers.get("Content-Range", "")
    if response.status_code == 206 and content_range.startswith("items "):
        span, _, total = content_range[len("items "):].partition("/")
        end = span.partition("-")[2]
        more = end.isdigit() and (int(end) + 1 < int(total) if total.isdigit() else len(objects) >= limit)
    return Page(objects, more, str(start + len(objects)) if more else None,
                response.headers.get("X-TAXII-Date-Added-First"), response.headers.get("X-TAXII-Date-Added-Last"))


def collections(server: Server, connection: Connection) -> tuple[object, list]:
    """The API root (taxii2-client's) and its collections."""
    root = server.module.ApiRoot(server.root_url, conn=connection)
    with explained(f"GET {server.root_url}"):
        root.refresh_information()
    with explained(f"GET {server.root_url}collections/"):
        root.refresh_collections()
    return root, list(root.collections)


def iter_chosen(found: list, wanted: list[str], *, write: bool = False) -> Iterator:
    """The collections named in ``wanted`` (ids or titles), or every readable one when it is
    empty; ConnectorError naming one that is missing or that may not be read (written)."""
    if not wanted:
        yield from (collection for collection in found if collection.can_read)
        return
    for name in wanted:
        matches = [c for c in found if c.id == name] or [c for c in found if c.title.lower() == name.lower()]
        if not matches:
            known = ", ".join(f"{c.title!r} ({c.id})" for c in found) or "none"
            raise ConnectorError(f"the API root has no collection {name!r} (it has: {known})", permanent=True)
        collection = matches[0]
        if not (collection.can_write if write else collection.can_read):
            raise ConnectorError(f"the collection {collection.title!r} ({collection.id}) does not allow "
                                 f"{'writing' if write else 'reading'} with these credentials", permanent=True)
        yield collection


def names(text: str) -> list[str]:
    """Collection ids or titles from a setting: one per line, or separated by commas."""
    return [part.strip() for line in (text or "").splitlines() for part in line.split(",") if part.strip()]
