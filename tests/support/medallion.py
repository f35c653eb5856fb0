"""medallion, the OASIS TAXII 2.1 server, on a free local port for tests.

``with Medallion(corpus(300).objects) as taxii:`` serves, in a thread, one API root (``api1``)
with its memory backend:

- ``READ_ID`` "Indicators": read-only, holding the objects given, added one second apart
  (objects given as one ``batch`` share their instant, as objects POSTed together do);
- ``WRITE_ID`` "Shared with partners": readable and writable, empty;
- ``DROP_ID`` "Drop box": write-only; ``CLOSED_ID`` "Vault": neither.

Users (HTTP Basic) are ``reader``/``reader-pass`` and ``writer``/``writer-pass``; the bearer
tokens in ``tokens`` stand for a user (medallion knows Basic only, so the gate in front of it
swaps the token for that user's Basic credentials). ``max_page_size`` is medallion's page
size: a larger ``limit`` is cut to it without a word.

The gate also records every request (``requests``), can make requests fail (``fail``: the
server may first do the work, as when an answer is lost), run something just before a request
(``before``), slow every request down (``delay``), forget every ``next`` token
(``expire_tokens``), and keep the statuses of POSTs pending for a number of polls
(``pending_polls``). A ``MedallionMixin`` gives a test case one server per test.
"""

import base64
import copy
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import medallion
import medallion.common
from flask import Flask
from medallion.backends.memory_backend import MemoryBackend
from medallion.exceptions import BackendError, ProcessingError
from medallion.views import collections as collections_view
from medallion.views import discovery, manifest, objects
from werkzeug.serving import WSGIRequestHandler, make_server

API_ROOT = "api1"
READ_ID = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
WRITE_ID = "365fed99-08fa-fdcd-a1b3-fb247eb41d01"
DROP_ID = "472c94ae-3113-4e3e-a4dd-a9f4ac7471d4"
CLOSED_ID = "8b8f0d57-3d3f-4b52-9a5c-ff9bb2b2a0e6"
USERS = {"reader": "reader-pass", "writer": "writer-pass"}
STIX_21 = "application/stix+json;version=2.1"

# medallion parses every manifest timestamp again for every object of every request (its memory
# backend compares all pairs): remembering the parses keeps a page of a few hundred objects
# from taking seconds. The answers are the same.
medallion.common.string_to_datetime = functools.lru_cache(maxsize=None)(medallion.common.string_to_datetime)


def taxii_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Hit:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int = 0


@dataclass
class Fault:
    """Answer ``status`` instead, ``times`` times, to requests ``when`` selects; ``consume``:
    medallion handles the request first (a next token moves on), and the answer is lost."""

    when: Callable[[Hit], bool]
    status: int
    times: int = 1
    consume: bool = True


@dataclass
class _Pending:
    status: dict
    polls_left: int


class _Backend(MemoryBackend):
    """medallion's memory backend, expiring ``next`` tokens when asked instead of from a timer
    thread of its own, and able to keep statuses pending for a few polls."""

    def __init__(self, data: dict, pending_polls: int = 0):
        self.data = data
        self.next = {}
        self.timeout = 30
        self.pending_polls = pending_polls
        self.pending: dict[str, _Pending] = {}

    def add_objects(self, api_root, collection_id, objs, request_time):
        status = super().add_objects(api_root, collection_id, objs, request_time)
        if not self.pending_polls:
            return status
        done = copy.deepcopy(status)
        details = [{"id": d["id"], "version": d["version"]} for d in done.get("successes", []) + done.get("failures",
                                                                                                           [])]
        status.update(status="pending", success_count=0, failure_count=0, pending_count=done["total_count"],
                      pendings=details)
        status.pop("successes", None)
        status.pop("failures", None)
        self.pending[status["id"]] = _Pending(done, self.pending_polls)
        return status

    def get_status(self, api_root, status_id):
        waiting = self.pending.get(status_id)
        if waiting:
            waiting.polls_left -= 1
            if waiting.polls_left <= 0:
                stored = super().get_status(api_root, status_id)
                stored.clear()
                stored.update(waiting.status)
                del self.pending[status_id]
        return super().get_status(api_root, status_id)


class _QuietHandler(WSGIRequestHandler):
    def log(self, *args):
        pass


class Medallion:
    """A medallion server with the collections described in the module docstring."""

    def __init__(self, indicators: list[dict] = (), *, max_page_size: int = 100, max_content_length: int = 100_000,
                 tokens: dict[str, str] | None = None, pending_polls: int = 0,
                 first_added: datetime | None = None):
        self.tokens = tokens if tokens is not None else {"s3cr3t-token": "reader"}
        self.requests: list[Hit] = []
        self.faults: list[Fault] = []
        self.hooks: list[list] = []
        self.delay = 0.0
        self._lock = threading.Lock()
        self._clock = first_added or datetime.now(UTC) - timedelta(days=2)
        self.httpd = make_server("127.0.0.1", 0, self._gate, threaded=True, request_handler=_QuietHandler)
        self.backend = _Backend(self._data(max_content_length), pending_polls)
        self.app = self._app(max_page_size)
        if indicators:
            self.add(READ_ID, list(indicators))
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    # URLs ----------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}/taxii2/"

    @property
    def root_url(self) -> str:
        return f"{self.base_url}/{API_ROOT}/"

    def objects_path(self, collection_id: str) -> str:
        return f"/{API_ROOT}/collections/{collection_id}/objects/"

    # Content -------------------------------------------------------------------------------------

    def add(self, collection_id: str, stix_objects: list[dict], *, batch: bool = False,
            at: datetime | None = None) -> None:
        """Put objects in a collection directly, each added one second after the last (all at
        one instant with ``batch``, or at ``at``)."""
        collection = self.collection(collection_id)
        for obj in stix_objects:
            if at is None and (not batch or obj is stix_objects[0]):
                self._clock += timedelta(seconds=1)
            added = at or self._clock
            collection["objects"].append(copy.deepcopy(obj))
            collection["manifest"].append({"id": obj["id"], "date_added": taxii_time(added),
                                           "version": obj.get("modified") or obj.get("created"),
                                           "media_type": STIX_21})

    def collection(self, collection_id: str) -> dict:
        return next(c for c in self.backend.data[API_ROOT]["collections"] if c["id"] == collection_id)

    def stored(self, collection_id: str) -> list[dict]:
        return self.collection(collection_id)["objects"]

    # Misbehaviour --------------------------------------------------------------------------------

    def fail(self, status: int, when: Callable[[Hit], bool], *, times: int = 1, consume: bool = True) -> None:
        with self._lock:
            self.faults.append(Fault(when, status, times, consume))

    def before(self, when: Callable[[Hit], bool], action: Callable[[], None], *, times: int = 1) -> None:
        """Run ``action`` just before handling the next ``times`` requests ``when`` selects."""
        with self._lock:
            self.hooks.append([when, action, times])

    def expire_tokens(self) -> None:
        """Forget every ``next`` token, as medallion does 30 seconds after handing one out."""
        self.backend.next.clear()

    def object_requests(self, collection_id: str = READ_ID) -> list[Hit]:
        path = self.objects_path(collection_id)
        return [hit for hit in self.requests if hit.path == path]

    # Server --------------------------------------------------------------------------------------

    def start(self) -> "Medallion":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "Medallion":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _data(self, max_content_length: int) -> dict:
        def collection(id_, title, read, write):
            return {"id": id_, "title": title, "description": f"{title} (test collection)", "can_read": read,
                    "can_write": write, "media_types": [STIX_21], "objects": [], "manifest": []}

        return {
            "/discovery": {"title": "Test TAXII server", "description": "medallion for CTE's tests",
                           "default": self.root_url, "api_roots": [self.root_url]},
            API_ROOT: {
                "information": {"title": "Test API root", "description": "Indicators for tests",
                                "versions": ["application/taxii+json;version=2.1"],
                                "max_content_length": max_content_length},
                "status": [],
                "collections": [collection(READ_ID, "Indicators", True, False),
                                collection(WRITE_ID, "Shared with partners", True, True),
                                collection(DROP_ID, "Drop box", False, True),
                                collection(CLOSED_ID, "Vault", False, False)],
            },
        }

    def _app(self, max_page_size: int) -> Flask:
        # One Flask app per server (medallion's module-level app is one per process).
        app = Flask("medallion")
        app.users_backend = dict(USERS)
        app.taxii_config = {"max_page_size": max_page_size}
        app.medallion_backend = self.backend
        for blueprint in (collections_view.collections_bp, discovery.discovery_bp, manifest.manifest_bp,
                          objects.objects_bp):
            app.register_blueprint(blueprint)
        app.register_error_handler(ProcessingError, medallion.handle_processing_error)
        app.register_error_handler(BackendError, medallion.handle_backend_error)
        return app

    def _gate(self, environ, start_response):
        headers = {name[5:].replace("_", "-").title(): value for name, value in environ.items()
                   if name.startswith("HTTP_")}
        headers.update({"Content-Type": environ.get("CONTENT_TYPE", ""),
                        "Content-Length": environ.get("CONTENT_LENGTH", "")})
        hit = Hit(environ["REQUEST_METHOD"], environ["PATH_INFO"], parse_qs(environ.get("QUERY_STRING", "")), headers)
        with self._lock:
            self.requests.append(hit)
            fault = next((f for f in self.faults if f.times > 0 and f.when(hit)), None)
            if fault:
                fault.times -= 1
            hooks = [hook for hook in self.hooks if hook[2] > 0 and hook[0](hit)]
            for hook in hooks:
                hook[2] -= 1
        for _, action, _ in hooks:
            action()
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if authorization.startswith("Bearer "):
            user = self.tokens.get(authorization[len("Bearer "):])
            credentials = f"{user}:{USERS[user]}" if user else "nobody:"
            environ["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        if self.delay:
            time.sleep(self.delay)

        def recording_start(status, headers, exc_info=None):
            hit.status = int(status.split()[0])
            return start_response(status, headers, exc_info)

        if fault is None:
            return self.app(environ, recording_start)
        if fault.consume:
            for _ in self.app(environ, lambda *args: None):
                pass
        hit.status = fault.status
        start_response(f"{fault.status} Injected", [("Content-Type", "text/plain")])
        return [b"injected failure"]


class MedallionMixin:
    """A fresh server per test, as ``self.taxii``, built from ``medallion_objects()``."""

    max_page_size = 50
    max_content_length = 100_000

    def medallion_objects(self) -> list[dict]:
        return []

    def setUp(self):
        super().setUp()
        self.taxii = Medallion(self.medallion_objects(), max_page_size=self.max_page_size,
                               max_content_length=self.max_content_length).start()
        self.addCleanup(self.taxii.stop)
