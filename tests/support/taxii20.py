"""A small TAXII 2.0 server (read side) on a local port, after the TAXII 2.0 specification
(OASIS cs01): media types ``application/vnd.oasis.taxii+json; version=2.0`` and, for objects,
``application/vnd.oasis.stix+json; version=2.0`` (a STIX bundle); pagination by a ``Range:
items=<first>-<last>`` header answered with ``206`` and ``Content-Range: items <first>-<last>/<total>``,
cut to the server's page size; ``added_after`` and the ``X-TAXII-Date-Added-First/Last``
headers; ``406`` for an Accept header it does not serve (a TAXII 2.1 request, say).

medallion speaks TAXII 2.1 only: this stands in for the 2.0 servers still in the field.
"""

import json
import re
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from tests.support.httpserver import LocalServer, Reply, Seen

TAXII_20 = "application/vnd.oasis.taxii+json; version=2.0"
STIX_20 = "application/vnd.oasis.stix+json; version=2.0"
COLLECTION_ID = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"


def _accepts(seen: Seen, media: str) -> bool:
    wanted = seen.headers.get("Accept", "").replace(" ", "").lower()
    return media.replace(" ", "").lower() in wanted.split(",")


def _answer(seen: Seen, media: str, body: dict) -> Reply:
    if not _accepts(seen, media):
        return Reply(406, json.dumps({"title": "Not Acceptable", "http_status": "406"}), {"Content-Type": TAXII_20})
    return Reply(200, json.dumps(body), {"Content-Type": media})


class Taxii20Server(LocalServer):
    """``Taxii20Server([(stix 2.0 object, date added), ...])``: one API root, one collection."""

    def __init__(self, entries: list[tuple[dict, datetime]], page_size: int = 50):
        super().__init__()
        self.entries = sorted(entries, key=lambda entry: entry[1])
        self.page_size = page_size
        root = "/api2/"
        self.route("/taxii/", lambda seen: _answer(seen, TAXII_20, {
            "title": "TAXII 2.0 test server", "default": self.url(root), "api_roots": [self.url(root)]}))
        self.route(root, lambda seen: _answer(seen, TAXII_20, {
            "title": "TAXII 2.0 root", "versions": ["taxii-2.0"], "max_content_length": 1_000_000}))
        self.route(f"{root}collections/", lambda seen: _answer(seen, TAXII_20, {"collections": [{
            "id": COLLECTION_ID, "title": "Indicators 2.0", "can_read": True, "can_write": False,
            "media_types": [STIX_20]}]}))
        self.route(f"{root}collections/{COLLECTION_ID}/objects/", self._objects)

    @property
    def discovery_url(self) -> str:
        return self.url("/taxii/")

    def _objects(self, seen: Seen) -> Reply:
        if not _accepts(seen, STIX_20):
            return Reply(406, "", {"Content-Type": TAXII_20})
        after = parse_qs(urlsplit(seen.path).query).get("added_after", [None])[0]
        matching = [(obj, added) for obj, added in self.entries
                    if after is None or added > datetime.fromisoformat(after.replace("Z", "+00:00"))]
        wanted = re.fullmatch(r"items[= ](\d+)-(\d+)", seen.headers.get("Range", ""))
        first, last, status = 0, len(matching) - 1, 200
        if wanted:
            first = int(wanted.group(1))
            last = min(int(wanted.group(2)), first + self.page_size - 1, len(matching) - 1)
            status = 206
            if first >= len(matching) and matching:
                return Reply(416, "", {"Content-Range": f"items */{len(matching)}"})
        page = matching[first:last + 1]
        headers = {"Content-Type": STIX_20}
        if status == 206:
            headers["Content-Range"] = f"items {first}-{last}/{len(matching)}" if page else "items */0"
        if page:
            headers["X-TAXII-Date-Added-First"] = _stamp(page[0][1])
            headers["X-TAXII-Date-Added-Last"] = _stamp(page[-1][1])
        bundle = {"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "spec_version": "2.0",
                  "objects": [obj for obj, _ in page]}
        return Reply(status, json.dumps(bundle), headers)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
