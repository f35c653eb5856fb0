"""A local fake of a MISP instance's REST API, over real HTTP, for the MISP connector's tests.

Built from MISP's documentation and code (REFERENCE-destinations.md, section 6; MISP's
AttributesController::add, RestResponseComponent, RateLimitComponent, AttributeValidationTool):

- auth: the raw key in ``Authorization``; a wrong or missing key answers 403 "Authentication
  failed. ..."; a request without ``Accept: application/json`` is a browser's: 302 to the login;
- ``GET /servers/getVersion``;
- ``POST /attributes/restSearch``: ``type``, ``to_ids``, ``deleted`` (deleted ones are left out
  unless asked), ``timestamp`` (epoch, ``[from, to]`` or "5d"/"12h"/"30m"), ``tags`` (with "!"
  negation, matching attribute and event tags), ``published``, ``includeEventTags``, ``limit`` and
  ``page`` (in attribute id order); answers ``{"response": {"Attribute": [...]}}``;
- ``POST /events/add`` (``{"Event": {...}}``), ``POST /attributes/add/{event id or uuid}`` with one
  attribute or a list (per-attribute validation errors as MISP gives them, 403 when none is
  saved), ``POST /events/publish/{id}``, ``GET /tags/search/{name}``, ``POST /tags/add``;
- permissions: adding needs ``perm_add``, creating tags ``perm_tag_editor`` (an unknown tag on an
  event or attribute is created only with it, else dropped silently, as MISP's captureTag does);
- the optional per-role rate limit on restSearch: ``rate_limit_count`` per window, headers
  ``X-Rate-Limit-Limit/Remaining/Reset``, 429 "Rate limit exceeded.", 405 when the count is 0.

MISP writes ids and timestamps as strings and flags as booleans; ``numbers="int"`` renders ids
and timestamps as integers and flags as 1/0 instead, as some exports do.
"""

import json
import re
import threading
import time
import uuid as uuids
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from tests.support.httpserver import LocalServer, Reply
from tests.support.misp_fake.rules import (
    AUTH_FAILED,
    CATEGORIES,
    DEFAULT_CATEGORY,
    attribute_errors,
    error,
    matches,
    refusal,
    true,
    validate_value,
)

__all__ = ["CATEGORIES", "FakeMisp", "Role", "serve_feed", "validate_value"]


@dataclass
class Role:
    perm_add: bool = True
    perm_tag_editor: bool = True
    perm_publish: bool = True
    enforce_rate_limit: bool = False
    rate_limit_count: int = 0
    window: float = 900.0  # seconds, as MISP's Redis key lives


@dataclass
class State:
    events: dict[int, dict] = field(default_factory=dict)
    attributes: dict[int, dict] = field(default_factory=dict)
    tags: dict[str, dict] = field(default_factory=dict)
    next_id: int = 1


class FakeMisp:
    """``with FakeMisp() as misp: misp.add_event("info", attributes=[...])``; ``misp.base_url``."""

    VERSION = "2.4.190"

    def __init__(self, api_key: str = "fake-misp-key", *, numbers: str = "string", role: Role | None = None):
        self.api_key, self.numbers, self.role = api_key, numbers, role or Role()
        self.state = State()
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, JSON body)
        self.pause = 0.0  # seconds each restSearch waits before answering
        self.failures: list[dict] = []  # {"path", "page", "status", "times"}: answers forced on matching calls
        self._searches: list[float] = []
        self._lock = threading.RLock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}"

    def __enter__(self) -> "FakeMisp":
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    # Seeding and inspection (Python side) ------------------------------------------------------

    def add_event(self, info: str, *, attributes=(), objects=(), tags=(), threat_level_id: int = 4,
                  published: bool = True, timestamp: int | None = None) -> dict:
        """An event as an analyst made it; attributes are dicts of MISP fields (type and value at least)."""
        with self._lock:
            event = self._new_event({"info": info, "threat_level_id": threat_level_id, "published": published,
                                     "Tag": [{"name": name} for name in tags]}, timestamp)
            for attribute in attributes:
                self._store_attribute(event, attribute, timestamp=attribute.get("timestamp", timestamp))
            for obj in objects:
                object_id = self._id()
                for attribute in obj.get("Attribute", []):
                    deleted = obj.get("deleted") or attribute.get("deleted")
                    self._store_attribute(event, {**attribute, "deleted": deleted},
                                          timestamp=attribute.get("timestamp", timestamp), object_id=object_id)
            return event

    def attributes(self, event_id: int | None = None) -> list[dict]:
        return [a for a in self.state.attributes.values() if event_id is None or a["event_id"] == event_id]

    def searches(self) -> list[dict]:
        return [body for method, path, body in self.requests if path == "/attributes/restSearch"]

    def calls(self, prefix: str) -> list[tuple[str, dict]]:
        return [(path, body) for _, path, body in self.requests if path.startswith(prefix)]

    def _id(self) -> int:
        self.state.next_id += 1
        return self.state.next_id - 1

    def _new_event(self, data: dict, timestamp: int | None) -> dict:
        event_id = self._id()
        event = {"id": event_id, "uuid": str(data.get("uuid") or uuids.uuid4()), "info": data["info"],
                 "date": data.get("date") or time.strftime("%Y-%m-%d"), "orgc_id": 1, "org_id": 1,
                 "threat_level_id": int(data.get("threat_level_id") or 4), "analysis": int(data.get("analysis") or 0),
                 "distribution": int(data.get("distribution") or 0), "published": bool(data.get("published")),
                 "timestamp": timestamp or int(time.time()), "tags": self._capture_tags(data.get("Tag"))}
        self.state.events[event_id] = event
        return event

    def _capture_tags(self, tags) -> list[str]:
        names = []
        for tag in tags or []:
            name = tag.get("name") if isinstance(tag, dict) else str(tag)
            if name and (name in self.state.tags or self.role.perm_tag_editor):
                self.state.tags.setdefault(name, {"id": self._id(), "name": name, "colour": "#999999"})
                names.append(name)
        return names

    def _store_attribute(self, event: dict, data: dict, *, timestamp=None, object_id: int = 0) -> dict:
        attribute = {
            "id": self._id(), "event_id": event["id"], "object_id": object_id,
            "object_relation": data.get("object_relation"), "type": data["type"], "value": data["value"],
            "category": data.get("category") or DEFAULT_CATEGORY.get(data["type"], "Network activity"),
            "to_ids": bool(data.get("to_ids", True)), "uuid": str(data.get("uuid") or uuids.uuid4()),
            "timestamp": int(timestamp or time.time()), "distribution": int(data.get("distribution", 5)),
            "comment": data.get("comment", ""), "deleted": bool(data.get("deleted")),
            "first_seen": data.get("first_seen"), "last_seen": data.get("last_seen"),
            "tags": self._capture_tags(data.get("Tag")),
        }
        self.state.attributes[attribute["id"]] = attribute
        event["timestamp"] = max(event["timestamp"], attribute["timestamp"])
        return attribute

    # Rendering as MISP writes JSON ----------------------------------------------------------------

    def _n(self, number: int):
        return str(number) if self.numbers == "string" else number

    def _flag(self, value: bool):
        return value if self.numbers == "string" else int(value)

    def _tag(self, name: str) -> dict:
        tag = self.state.tags[name]
        return {"id": self._n(tag["id"]), "name": name, "colour": tag["colour"], "exportable": True, "local": 0}

    def render_attribute(self, attribute: dict, *, event_tags: bool = False) -> dict:
        event = self.state.events[attribute["event_id"]]
        names = attribute["tags"] + ([name for name in event["tags"] if name not in attribute["tags"]]
                                     if event_tags else [])
        rendered = {key: attribute[key] for key in ("type", "category", "value", "uuid", "comment", "first_seen",
                                                     "last_seen", "object_relation")}
        rendered.update({
            "id": self._n(attribute["id"]), "event_id": self._n(attribute["event_id"]),
            "object_id": self._n(attribute["object_id"]), "timestamp": self._n(attribute["timestamp"]),
            "distribution": self._n(attribute["distribution"]), "sharing_group_id": self._n(0),
            "to_ids": self._flag(attribute["to_ids"]), "deleted": self._flag(attribute["deleted"]),
            "disable_correlation": self._flag(False),
            "Event": {"org_id": self._n(1), "distribution": self._n(event["distribution"]),
                      "id": self._n(event["id"]), "info": event["info"], "orgc_id": self._n(1), "uuid": event["uuid"]},
        })
        if names:
            rendered["Tag"] = [self._tag(name) for name in names]
        return rendered

    def render_event(self, event: dict) -> dict:
        attributes = [self.render_attribute(a) for a in self.attributes(event["id"]) if not a["deleted"]]
        for attribute in attributes:
            attribute.pop("Event")
        return {"Event": {
            "id": self._n(event["id"]), "uuid": event["uuid"], "info": event["info"], "date": event["date"],
            "orgc_id": self._n(1), "org_id": self._n(1), "threat_level_id": self._n(event["threat_level_id"]),
            "analysis": self._n(event["analysis"]), "distribution": self._n(event["distribution"]),
            "published": self._flag(event["published"]), "timestamp": self._n(event["timestamp"]),
            "attribute_count": self._n(len(attributes)), "Attribute": attributes, "Object": [],
            "Tag": [self._tag(name) for name in event["tags"]],
        }}

    # HTTP -------------------------------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                status, data, headers = fake.answer(self.command, self.path, dict(self.headers), body)
                payload = json.dumps(data).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a client that went away (a killed pull) is what some tests provoke

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        return Handler

    def answer(self, method: str, path: str, headers: dict, body) -> tuple[int, object, dict]:
        with self._lock:
            self.requests.append((method, path, body))
        if headers.get("Authorization") != self.api_key:
            return 403, {"name": AUTH_FAILED, "message": AUTH_FAILED, "url": path}, {}
        if "application/json" not in headers.get("Accept", ""):
            return 302, {}, {"Location": "/users/login"}
        forced = self._forced(path, body)
        if forced:
            return forced, {"name": "Internal error", "message": "An Internal Error Has Occurred.", "url": path}, {}
        if self.pause and path == "/attributes/restSearch":
            time.sleep(self.pause)
        for verb, pattern, name in self.ROUTES:
            match = re.fullmatch(pattern, path.split("?", 1)[0])
            if match and verb == method:
                with self._lock:
                    return getattr(self, name)(body, *match.groups())
        return 404, error("Not Found", path), {}

    def _forced(self, path: str, body) -> int | None:
        page = body.get("page") if isinstance(body, dict) else None
        with self._lock:
            for failure in self.failures:
                if not path.startswith(failure["path"]) or failure.get("page") not in (None, page):
                    continue
                if failure["after"]:
                    failure["after"] -= 1
                elif failure["times"]:
                    failure["times"] -= 1
                    return failure["status"]
        return None

    def fail(self, path: str, status: int = 500, *, times: int = 1, page: int | None = None, after: int = 0) -> None:
        """Answer ``times`` calls to paths starting with ``path`` (and ``page`` of a search) with
        ``status``, after letting ``after`` of them through."""
        self.failures.append({"path": path, "page": page, "status": status, "times": times, "after": after})

    def rate_limit(self) -> tuple[int, dict] | None:
        """MISP's RateLimitComponent::check for a search: None when not enforced, else the status
        (200 to go on, 405 or 429) and the headers to send."""
        role = self.role
        if not role.enforce_rate_limit:
            return None
        if role.rate_limit_count == 0:
            return 405, {}
        now = time.monotonic()
        with self._lock:
            self._searches = [moment for moment in self._searches if now - moment < role.window]
            reset = int(role.window - (now - self._searches[0])) + 1 if self._searches else int(role.window)
            headers = {"X-Rate-Limit-Limit": str(role.rate_limit_count), "X-Rate-Limit-Reset": str(reset)}
            if len(self._searches) >= role.rate_limit_count:
                return 429, {**headers, "X-Rate-Limit-Remaining": "0"}
            self._searches.append(now)
            return 200, {**headers, "X-Rate-Limit-Remaining": str(role.rate_limit_count - len(self._searches))}


    # Endpoints (called with the lock held) --------------------------------------------------------

    ROUTES = (
        ("GET", r"/servers/getVersion", "_version"),
        ("POST", r"/attributes/restSearch", "_search"),
        ("POST", r"/events/add", "_add_event"),
        ("POST", r"/attributes/add/([0-9a-f-]+)", "_add_attributes"),
        ("POST", r"/events/publish/([0-9a-f-]+)", "_publish"),
        ("GET", r"/tags/search/(.+)", "_search_tags"),
        ("POST", r"/tags/add", "_add_tag"),
    )

    def _version(self, body):
        return 200, {"version": self.VERSION, "perm_sync": False, "perm_sighting": False,
                     "perm_galaxy_editor": False, "request_encoding": ["gzip"], "filter_sightings": True}, {}

    def _search(self, body):
        limited = self.rate_limit()
        headers = limited[1] if limited else {}
        if limited and limited[0] == 405:
            return 405, error("API searches are not allowed for this user role.", "/attributes/restSearch"), {}
        if limited and limited[0] == 429:
            return 429, error("Rate limit exceeded.", "/attributes/restSearch"), headers
        query = body if isinstance(body, dict) else {}
        if query.get("returnFormat", "json") != "json":
            return 400, error("The fake answers returnFormat json only.", "/attributes/restSearch"), {}
        found = [a for a in sorted(self.state.attributes.values(), key=lambda a: a["id"])
                 if matches(a, self.state.events[a["event_id"]], query)]
        if query.get("limit"):
            limit, page = int(query["limit"]), int(query.get("page") or 1)
            found = found[(page - 1) * limit: page * limit]
        event_tags = true(query.get("includeEventTags"))
        return 200, {"response": {"Attribute": [self.render_attribute(a, event_tags=event_tags) for a in found]}}, \
            headers

    def _add_event(self, body):
        if not self.role.perm_add:
            return 403, error("You do not have permission to use this functionality.", "/events/add"), {}
        data = body.get("Event", body) if isinstance(body, dict) else {}
        errors = {}
        if not str(data.get("info") or "").strip():
            errors["info"] = ["Info cannot be empty."]
        for name, allowed in (("distribution", range(6)), ("threat_level_id", range(1, 5)), ("analysis", range(3))):
            if name in data and not (str(data[name]).isdigit() and int(data[name]) in allowed):
                errors[name] = ["Options : " + ", ".join(map(str, allowed))]
        if errors:
            return 403, refusal("Event", "/events/add", errors), {}
        event = self._new_event(data, None)
        for attribute in data.get("Attribute") or []:  # invalid ones are dropped (MISP only logs them)
            if not attribute_errors(self.attributes(event["id"]), attribute):
                self._store_attribute(event, attribute)
        return 200, self.render_event(event), {}

    def _event(self, key: str) -> dict | None:
        return next((e for e in self.state.events.values() if str(e["id"]) == key or e["uuid"] == key), None)

    def _add_attributes(self, body, key):
        event = self._event(key)
        if event is None:
            return 404, error("Invalid event", f"/attributes/add/{key}"), {}
        if not self.role.perm_add:
            return 403, error("You do not have permission to do that.", f"/attributes/add/{key}"), {}
        data = body.get("Attribute", body) if isinstance(body, dict) else body
        attributes = data if isinstance(data, list) else [data]
        saved, fails = [], {}
        for index, attribute in enumerate(attributes):
            errors = attribute_errors(self.attributes(event["id"]), attribute)
            if errors:
                fails[f"attribute_{index}"] = errors
            else:
                saved.append(self._store_attribute(event, attribute))
        if saved:
            event["published"] = False
        if not saved:  # one attribute's errors come alone, several under "attribute_<index>"
            errors = fails if len(attributes) > 1 else fails["attribute_0"]
            return 403, refusal("Attribute", "/attributes/add", errors), {}
        rendered = [{k: v for k, v in self.render_attribute(a).items() if k != "Event"} for a in saved]
        answer = {"Attribute": rendered[0]} if len(rendered) == 1 else {"Attribute": rendered}
        return 200, {**answer, **({"errors": fails} if fails else {})}, {}

    def _publish(self, body, key):
        event = self._event(key)
        if event is None:
            return 404, error("Invalid event.", f"/events/publish/{key}"), {}
        if not self.role.perm_publish:
            return 403, error("You do not have permission to use this functionality.", "/events/publish"), {}
        event["published"] = True
        return 200, {"saved": True, "success": True, "name": "Job queued", "message": "Job queued",
                     "url": f"/events/publish/{event['id']}", "id": self._n(event["id"])}, {}

    def _search_tags(self, body, term):
        needle = unquote(term).lower()
        return 200, [{"Tag": self._tag(name)} for name in self.state.tags if needle in name.lower()], {}

    def _add_tag(self, body):
        if not self.role.perm_tag_editor:
            return 403, error("You do not have permission to use this functionality.", "/tags/add"), {}
        data = body.get("Tag", body) if isinstance(body, dict) else {}
        name = str(data.get("name") or "").strip()
        if not name or name in self.state.tags:
            errors = {"name": ["A similar name already exists." if name else "This field cannot be left empty."]}
            return 403, refusal("Tag", "/tags/add", errors), {}
        self.state.tags[name] = {"id": self._id(), "name": name, "colour": data.get("colour") or "#999999"}
        return 200, {"Tag": self._tag(name)}, {}


def serve_feed(server: LocalServer, folder: Path, prefix: str = "/feed/") -> str:
    """Serve every file of a MISP feed folder under ``prefix``; a file not there answers 404."""
    for path in sorted(folder.iterdir()):
        if path.is_file():
            reply = Reply(body=path.read_bytes(), headers={"Content-Type": "application/json"})
            server.route(prefix + path.name, reply)
    return server.url(prefix)
