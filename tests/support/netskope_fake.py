"""A local fake of a Netskope tenant's REST API, served over real HTTP (or HTTPS) for tests.

It reproduces what /work/shared/REFERENCE.md ("Netskope tenant") documents, limits and errors
included:

- API v2 token in ``Netskope-Api-Token``: a wrong one gets 401, one without the endpoint's
  scope gets 403 (scopes are endpoint paths, as the tenant's REST API v2 page grants them).
- Data Export iterator ``GET /api/v2/events/dataexport/alerts/{type}?index=&operation=``: one
  index per (endpoint, consumer); operations epoch / next / head / tail / resend; at most
  ``page_size`` (10,000) records a page; ``{"ok": 1, "result", "wait_time", "timestamp_hwm"}``;
  ``wait_time`` > 0 once the consumer is caught up.
- URL lists ``/api/v2/policy/urllist``: list (``pending=0`` deployed versions only, ``pending=1``
  the current ones), create, ``{id}/append``, ``{id}/replace``, ``deploy``; pending vs deployed
  state per list; a list's size is its entries as text, one per line (7 MB at most); 300,000
  entries per tenant; invalid entries (IPv6 included) refuse the whole request with 400
  ``{"statusCode": 400, "message": [[entry, reason], ...]}``.
- File hash list ``/api/v1/updateFileHashList`` (v1 token in the query or the JSON body): a
  full replace, 8 MB at most, v1 answers ``{"status": "success"|"error", ...}`` with HTTP 200;
  an unchanged list is the error "Duplicate request, no change in file hashes ...".
- Rate limits: ``RateLimit-Limit/Remaining/Reset`` headers on v2 answers; an optional bucket of
  ``rate`` requests per second per endpoint; 429 ``{"message": "API rate limit exceeded"}`` with
  ``Retry-After``; scripted 429s and 5xx (:meth:`FakeTenant.throttle`, :meth:`FakeTenant.fail`)
  and an ``error_rate`` of random 503s. A refused request changes nothing.

Every request is recorded (:attr:`FakeTenant.requests`) with the moment it arrived.
"""

import bisect
import ipaddress
import json
import random
import re
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MB = 1024 * 1024
URL_LIST_BYTES = 7 * MB
HASH_LIST_BYTES = 8 * MB
TENANT_URL_ITEMS = 300_000
PAGE_SIZE = 10_000
ALERTS = "/api/v2/events/dataexport/alerts/"
URLLIST = "/api/v2/policy/urllist"
HASHLIST = "/api/v1/updateFileHashList"
ALL_SCOPES = frozenset({ALERTS + "malware", ALERTS + "malsite", URLLIST})
DUPLICATE = "Duplicate request, no change in file hashes for the file filter - {}"

_HOST = re.compile(r"(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.?", re.I)
_HASH = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{64}")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    at: float
    status: int = 0


@dataclass
class UrlList:
    id: int
    name: str
    type: str
    urls: dict[str, None]  # the current (pending) entries, in order
    size: int
    deployed: list[str] | None = None  # None: never deployed
    deployed_type: str = "exact"
    pending: bool = True
    modified: int = field(default_factory=lambda: int(time.time()))

    def as_json(self, deployed: bool = False) -> dict:
        urls = self.deployed if deployed else list(self.urls)
        return {"id": self.id, "name": self.name,
                "data": {"urls": urls, "type": self.deployed_type if deployed else self.type, "json_version": 2},
                "modify_by": "API", "modify_time": self.modified, "modify_type": "Edited",
                "pending": 0 if deployed else int(self.pending)}


def entry_size(entry: str) -> int:
    """Bytes an entry takes in a list: its text and a line break."""
    return len(entry.encode()) + 1


def invalid_reason(entry, list_type: str) -> str:
    """Why the tenant refuses ``entry`` in a list of ``list_type``; "" when it takes it."""
    if not isinstance(entry, str) or not entry.strip() or entry != entry.strip() or len(entry) > 2048:
        return "Invalid URL"
    if list_type == "regex":
        try:
            re.compile(entry)
        except re.error:
            return "Invalid regex"
        return ""
    rest = re.sub(r"^https?://", "", entry, flags=re.I)
    host = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if host.startswith("[") or host.count(":") > 1:
        return "IPv6 address is not supported"
    host = re.sub(r":\d{1,5}$", "", host)
    try:
        ipaddress.IPv4Address(host)
        return ""
    except ValueError:
        pass
    return "" if _HOST.fullmatch(host) and any(c.isalpha() for c in host) else "Invalid URL"


class FakeTenant:
    """``with FakeTenant() as tenant: ... tenant.url ...``: a tenant on a local port."""

    def __init__(self, *, token: str = "v2-token", v1_token: str = "v1-token", scopes=ALL_SCOPES,
                 page_size: int = PAGE_SIZE, wait_time: int = 30, url_list_bytes: int = URL_LIST_BYTES,
                 hash_list_bytes: int = HASH_LIST_BYTES, tenant_items: int = TENANT_URL_ITEMS,
                 rate: float | None = None, error_rate: float = 0.0, seed: int = 7, delay: float = 0.0,
                 tls: ssl.SSLContext | None = None):
        self.token, self.v1_token, self.scopes = token, v1_token, set(scopes)
        self.page_size, self.wait_time = page_size, wait_time
        self.url_list_bytes, self.hash_list_bytes, self.tenant_items = url_list_bytes, hash_list_bytes, tenant_items
        self.rate, self.error_rate, self.delay = rate, error_rate, delay
        self.random = random.Random(seed)
        self.lock = threading.RLock()
        self.requests: list[Request] = []
        self.alerts: dict[str, list[tuple[int, int, dict]]] = {}
        self.indexes: dict[tuple[str, str], dict] = {}
        self.url_lists: dict[int, UrlList] = {}
        self.hash_lists: dict[str, list[str]] = {}
        self.hash_replacements: dict[str, int] = {}
        self.deploys = 0
        self._scripted: list[list] = []  # [path prefix, status, times left, retry-after]
        self._buckets: dict[str, list[float]] = {}
        self._seq = 0
        self._server = _server(self, tls)
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    # Test set-up ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_port}"

    def add_alerts(self, alert_type: str, *alerts: dict) -> None:
        """Alerts as the tenant records them; each needs ``timestamp`` (epoch seconds)."""
        with self.lock:
            stream = self.alerts.setdefault(alert_type, [])
            for alert in alerts:
                self._seq += 1
                alert = {"_id": f"{alert_type}-{self._seq:08d}", "alert_type": alert_type, **alert}
                bisect.insort(stream, (int(alert["timestamp"]), self._seq, alert))

    def add_url_list(self, name: str, urls: list[str] = (), list_type: str = "exact", deployed: bool = True) -> int:
        with self.lock:
            new = self._new_list(name, list_type, list(urls))
            if deployed:
                self._deploy(new)
            return new.id

    def add_hash_list(self, name: str, hashes: list[str] = ()) -> None:
        with self.lock:
            self.hash_lists[name] = list(hashes)
            self.hash_replacements[name] = 0

    def throttle(self, prefix: str, times: int = 1, retry_after: int = 1) -> None:
        """The next ``times`` requests under ``prefix`` get 429 with ``Retry-After``."""
        self._scripted.append([prefix, 429, times, retry_after])

    def fail(self, prefix: str, times: int = 1, status: int = 503) -> None:
        """The next ``times`` requests under ``prefix`` get ``status`` (a 5xx) and change nothing."""
        self._scripted.append([prefix, status, times, None])

    # What the tenant holds -----------------------------------------------------------------------

    def url_list(self, name: str) -> UrlList | None:
        return next((item for item in self.url_lists.values() if item.name == name), None)

    def deployed(self, name: str) -> list[str] | None:
        found = self.url_list(name)
        return None if found is None else found.deployed

    def hits(self, prefix: str, method: str | None = None) -> list[Request]:
        return [r for r in self.requests if r.path.startswith(prefix) and (method is None or r.method == method)]

    # The HTTP side --------------------------------------------------------------------------------

    def __enter__(self) -> "FakeTenant":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, request: Request, headers: dict[str, str]) -> tuple[int, dict[str, str], object]:
        """The tenant's answer; it acts at once, and ``delay`` slows only the answer's way back
        (so a client that dies while waiting leaves the change made, as on the real tenant)."""
        path = request.path
        if path.startswith("/api/v1/"):
            return self._v1(request)
        if not path.startswith("/api/v2/"):
            return 404, {}, "<html><body>Not Found</body></html>"
        if headers.get("netskope-api-token") != self.token:
            return 401, {}, {"status": 401, "message": "Unauthorized: invalid or expired token"}
        scope = self._scope(path)
        if scope not in self.scopes:
            return 403, {}, {"status": 403, "message": "Forbidden: the token is not authorized for this endpoint"}
        limited = self._limit(scope, path)
        if limited:
            return limited
        with self.lock:
            status, body = self._route(request)
        return status, self._rate_headers(scope), body

    def _scope(self, path: str) -> str:
        if path.startswith(ALERTS):
            return ALERTS + path[len(ALERTS):].split("/")[0]
        if path.startswith(URLLIST):
            return URLLIST
        return path

    def _limit(self, scope: str, path: str):
        """A scripted answer, a random 503, or 429 from the per-endpoint bucket."""
        with self.lock:
            for script in self._scripted:
                if script[2] > 0 and path.startswith(script[0]):
                    script[2] -= 1
                    if script[1] == 429:
                        return 429, {"Retry-After": str(script[3]), **self._rate_headers(scope, 0)}, \
                            {"message": "API rate limit exceeded"}
                    return script[1], {}, {"message": "Service Unavailable"}
            if self.error_rate and self.random.random() < self.error_rate:
                return 503, {}, {"message": "Service Unavailable"}
            if self.rate:
                now = time.monotonic()
                recent = [t for t in self._buckets.get(scope, []) if now - t < 1.0]
                if len(recent) >= self.rate:
                    self._buckets[scope] = recent
                    wait = max(1, int(1.0 - (now - recent[0]) + 0.999))
                    return 429, {"Retry-After": str(wait), **self._rate_headers(scope, 0)}, \
                        {"message": "API rate limit exceeded"}
                self._buckets[scope] = [*recent, now]
        return None

    def _rate_headers(self, scope: str, remaining: int | None = None) -> dict[str, str]:
        limit = int(self.rate or 4)
        if remaining is None:
            now = time.monotonic()
            used = len([t for t in self._buckets.get(scope, []) if now - t < 1.0])
            remaining = max(limit - used, 0)
        return {"RateLimit-Limit": str(limit), "RateLimit-Remaining": str(remaining), "RateLimit-Reset": "1"}

    def _route(self, request: Request) -> tuple[int, object]:
        method, path = request.method, request.path
        if path.startswith(ALERTS) and method == "GET":
            return self._iterate(path[len(ALERTS):], request.query)
        if path == URLLIST and method == "GET":
            deployed = request.query.get("pending", "1") == "0"
            shown = [item for item in self.url_lists.values() if not deployed or item.deployed is not None]
            return 200, [item.as_json(deployed) for item in shown]
        if path == URLLIST and method == "POST":
            return self._create(_json(request.body))
        if path == URLLIST + "/deploy" and method == "POST":
            return 200, self._deploy_all()
        match = re.fullmatch(re.escape(URLLIST) + r"/(\d+)(?:/(append|replace))?", path)
        if match and int(match.group(1)) in self.url_lists:
            found = self.url_lists[int(match.group(1))]
            if match.group(2) and method == "PATCH":
                return self._change(found, match.group(2), _json(request.body))
            if not match.group(2) and method == "GET":
                return 200, found.as_json()
        if match:
            return 404, {"statusCode": 404, "message": f"URL list {match.group(1)} not found"}
        return 405 if path.startswith(URLLIST) else 404, {"statusCode": 404, "message": "Not Found"}

    # Data Export iterator ---------------------------------------------------------------------

    def _iterate(self, alert_type: str, query: dict) -> tuple[int, object]:
        index, operation = query.get("index"), query.get("operation", "")
        if not index:
            return 400, {"ok": 0, "message": "index is required"}
        stream = self.alerts.get(alert_type, [])
        state = self.indexes.get((alert_type, index))
        if operation.isdigit():
            start = bisect.bisect_left(stream, (int(operation), -1))
        elif operation == "head":
            start = 0
        elif operation == "tail":
            start = len(stream)
        elif operation in ("next", "resend"):
            if state is None:
                return 400, {"ok": 0, "message": f"index {index} does not exist: start it with an epoch, head or tail"}
            start = state["last"][0] if operation == "resend" else state["position"]
        else:
            return 400, {"ok": 0, "message": f"invalid operation {operation!r}"}
        page = stream[start:start + self.page_size]
        end = start + len(page)
        self.indexes[(alert_type, index)] = {"position": end, "last": (start, end)}
        hwm = page[-1][0] if page else (int(operation) if operation.isdigit() else int(time.time()))
        wait = 0 if len(page) == self.page_size else self.wait_time
        return 200, {"ok": 1, "result": [alert for _, _, alert in page], "wait_time": wait, "timestamp_hwm": hwm}

    # URL lists --------------------------------------------------------------------------------

    def _new_list(self, name: str, list_type: str, urls: list[str]) -> UrlList:
        new = UrlList(id=max(self.url_lists, default=0) + 1, name=name, type=list_type, urls={}, size=0)
        new.urls = dict.fromkeys(urls)
        new.size = sum(entry_size(url) for url in new.urls)
        self.url_lists[new.id] = new
        return new

    def _refused(self, urls, list_type: str):
        if not isinstance(urls, list):
            return 400, {"statusCode": 400, "message": "data.urls must be an array of strings"}
        bad = [[url, reason] for url in urls if (reason := invalid_reason(url, list_type))]
        if bad:
            return 400, {"statusCode": 400, "message": bad}
        return None

    def _too_big(self, size: int, items: int, ignoring: UrlList | None = None):
        if size > self.url_list_bytes:
            return 400, {"statusCode": 400,
                         "message": f"URL list size {size} bytes exceeds the limit of {self.url_list_bytes} bytes"}
        others = sum(len(item.urls) for item in self.url_lists.values() if item is not ignoring)
        if others + items > self.tenant_items:
            return 400, {"statusCode": 400,
                         "message": f"the tenant holds at most {self.tenant_items} URL list entries"}
        return None

    def _create(self, body) -> tuple[int, object]:
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"].strip():
            return 400, {"statusCode": 400, "message": "name is required"}
        data = body.get("data") or {}
        list_type = data.get("type", "exact")
        if list_type not in ("exact", "regex"):
            return 400, {"statusCode": 400, "message": "data.type must be exact or regex"}
        if self.url_list(body["name"]):
            return 400, {"statusCode": 400, "message": f"URL list {body['name']} already exists"}
        urls = data.get("urls", [])
        refused = self._refused(urls, list_type)
        if refused:
            return refused
        unique = dict.fromkeys(urls)
        too_big = self._too_big(sum(entry_size(url) for url in unique), len(unique))
        if too_big:
            return too_big
        return 200, [self._new_list(body["name"], list_type, list(unique)).as_json()]

    def _change(self, target: UrlList, how: str, body) -> tuple[int, object]:
        data = (body or {}).get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            return 400, {"statusCode": 400, "message": "data is required"}
        list_type = data.get("type", target.type)
        urls = data.get("urls")
        refused = self._refused(urls, list_type)
        if refused:
            return refused
        if how == "append":
            added = [url for url in dict.fromkeys(urls) if url not in target.urls]
            size, items = target.size + sum(entry_size(url) for url in added), len(target.urls) + len(added)
        else:
            added = list(dict.fromkeys(urls))
            size, items = sum(entry_size(url) for url in added), len(added)
        too_big = self._too_big(size, items, ignoring=target)
        if too_big:
            return too_big
        if how == "append":
            target.urls.update(dict.fromkeys(added))
        else:
            target.urls = dict.fromkeys(added)
        target.size, target.type, target.pending, target.modified = size, list_type, True, int(time.time())
        return 200, target.as_json()

    def _deploy(self, target: UrlList) -> None:
        target.deployed, target.deployed_type, target.pending = list(target.urls), target.type, False

    def _deploy_all(self) -> list[dict]:
        self.deploys += 1
        changed = [item for item in self.url_lists.values() if item.pending]
        for item in changed:
            self._deploy(item)
        return [item.as_json() for item in changed]

    # File hash lists (API v1) ---------------------------------------------------------------------

    def _v1(self, request: Request) -> tuple[int, dict, object]:
        body = _json(request.body) if request.body else {}
        values = {**request.query, **(body if isinstance(body, dict) else {})}
        if request.path != HASHLIST or request.method not in ("POST", "PUT", "PATCH"):
            return 404, {}, {"status": "error", "errorCode": "General Error", "errors": ["Invalid endpoint"]}
        if values.get("token") != self.v1_token:
            return 200, {}, {"status": "error", "errorCode": "Authorization Error", "errors": ["Invalid token"]}
        limited = self._limit(HASHLIST, request.path)
        if limited:
            return limited
        with self.lock:
            return 200, {}, self._replace_hashes(str(values.get("name", "")), values.get("list", ""))

    def _replace_hashes(self, name: str, text) -> dict:
        def error(message: str) -> dict:
            return {"status": "error", "errorCode": "General Error", "errors": [message]}

        if name not in self.hash_lists:
            return error(f"Invalid file list name: {name}")
        if not isinstance(text, str):
            return error("list must be a comma separated string")
        if len(text.encode()) > self.hash_list_bytes:
            return error(f"File hash list exceeds the maximum size of {self.hash_list_bytes} bytes")
        hashes = [item.strip() for item in text.split(",") if item.strip()]
        bad = [item for item in hashes if not _HASH.fullmatch(item)]
        if bad:
            return error(f"Invalid hash: {bad[0]}")
        if set(hashes) == set(self.hash_lists[name]):
            return error(DUPLICATE.format(name))
        self.hash_lists[name] = hashes
        self.hash_replacements[name] += 1
        return {"status": "success", "data": {"name": name, "count": len(hashes)}}


def _json(body: bytes):
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _server(tenant: FakeTenant, tls: ssl.SSLContext | None) -> _Server:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            request = Request(self.command, parts.path, query, self.rfile.read(length), time.monotonic())
            with tenant.lock:
                tenant.requests.append(request)
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, extra, body = tenant.answer(request, headers)
            request.status = status
            if tenant.delay:
                time.sleep(tenant.delay)
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if isinstance(body, str) else "application/json")
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    server = _Server(("127.0.0.1", 0), Handler)
    if tls:
        server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server


# Factories for tests ------------------------------------------------------------------------------

def malware_alert(timestamp: int, number: int, **fields) -> dict:
    """A malware alert whose file has distinct MD5 and SHA256 values derived from ``number``."""
    return {"timestamp": timestamp, "md5": f"{number:032x}", "sha256": f"{number:064x}",
            "malware_name": f"Trojan.Gen.{number}", "malware_type": "Trojan", "file_name": f"invoice{number}.exe",
            "severity": "high", "hostname": "laptop-17", **fields}


def malsite_alert(timestamp: int, number: int, **fields) -> dict:
    """A malsite alert on ``http://bad<number>.example/landing``; ``hostname`` is the user's laptop."""
    return {"timestamp": timestamp, "url": f"http://bad{number}.example/landing", "site": f"bad{number}.example",
            "hostname": "laptop-17", "malsite_category": ["Phishing"], "severity": "medium", **fields}


def make_tenant(fake: FakeTenant, name: str = "acme", **fields):
    from exchange.models import Tenant

    values = {"url": fake.url, "token": fake.token, "v1_token": fake.v1_token, **fields}
    return Tenant.objects.create(name=name, **values)


def make_netskope(tenant, name: str = "netskope", alert_types=("malware", "malsite"), **fields):
    from tests.support.factories import make_config

    return make_config(name, connector="netskope", tenant=tenant, settings={"alert_types": list(alert_types)},
                       **fields)
