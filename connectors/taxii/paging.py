"""Reading a collection page by page from a position that survives a killed run.

A position is the server's own ``X-TAXII-Date-Added-Last`` of the last page read (the TAXII 2.1
cursor, section 3.4.2) plus the objects of that page. A new query starts just before it
(``added_after`` one microsecond earlier) and leaves out what that page held: a server adds
the objects of one request at one instant, so objects sharing the last page's instant can lie
on both sides of a page boundary, and ``added_after`` alone would skip those after it.

Servers' ``next`` tokens are fragile: medallion forgets them after 30 seconds, and hands out
the following page for a token on every request, so a request the HTTP layer retried (after a
503, say) may have moved past a page nobody received. Neither may lose a page: when a token is
refused (400, 404, 410) or its answer came after a retry, the pager asks again from the
position instead. ``more`` with no ``next`` means the server pages by ``added_after`` alone:
the pager does the same. A ``limit`` the server cuts silently and an empty page (medallion's
``{}``) need nothing special: ``more`` and ``next`` say whether to go on.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests

from connectors.base import ConnectorError
from connectors.taxii.client import TOKEN_GONE, Page
from connectors.taxii.patterns import timestamp

MAX_RESTARTS = 5  # restarts in a row without a new object before the run gives up
MAX_SEEN = 50_000  # object keys kept at one instant; past that, some may be read twice


def stamp(moment: datetime) -> str:
    """``added_after`` as servers want it: UTC, microseconds, ``Z`` (medallion takes no other form)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def key(obj: dict) -> str:
    """An object version's identity: its id and its ``modified`` (or ``created``)."""
    return f"{obj.get('id')}|{obj.get('modified') or obj.get('created') or ''}"


@dataclass
class Position:
    """Where reading a collection stands."""

    after: str  # a STIX timestamp: what was added after it is still to read
    seen: list[str] = field(default_factory=list)  # keys of the objects read at the instant `after`

    @classmethod
    def starting(cls, moment: datetime) -> "Position":
        return cls(stamp(moment))

    @classmethod
    def from_json(cls, data: dict) -> "Position":
        return cls(str(data["after"]), list(data.get("seen") or []))

    def as_json(self) -> dict:
        return {"after": self.after, "seen": list(self.seen)}

    def moment(self) -> datetime:
        return timestamp(self.after)

    def query(self) -> str:
        """``added_after`` for a new query from here."""
        if not self.seen:
            return self.after
        return stamp(self.moment() - timedelta(microseconds=1))

    def advance(self, page: Page) -> None:
        if not page.objects:
            return
        last = page.last if timestamp(page.last) else _latest_version(page.objects)
        if last is None or timestamp(last) < self.moment():
            return
        keys = [key(obj) for obj in page.objects]
        if timestamp(last) == self.moment():
            self.seen = list(dict.fromkeys(self.seen + keys))[-MAX_SEEN:]
        else:
            self.after, self.seen = last, keys


def _latest_version(objects: list[dict]) -> str | None:
    # Without X-TAXII-Date-Added-Last, the latest version among the objects stands in for it.
    stamps = [obj.get("modified") or obj.get("created") for obj in objects]
    stamps = [text for text in stamps if timestamp(text)]
    return max(stamps, key=timestamp) if stamps else None


Fetch = Callable[[str, str | None], Page]  # (added_after, token) -> page


def read(fetch: Fetch, position: Position, what: str) -> Iterator[list[dict]]:
    """The new objects of each page from ``position`` on, advancing ``position`` after each one
    (before it is handed over). Pages with no object are not handed over."""
    token: str | None = None
    query = position.query()
    restarts = 0
    while True:
        try:
            page = fetch(query, token)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if token is None or status not in TOKEN_GONE:
                raise
            page = None
        if page is None or (token is not None and page.retried):
            restarts += 1
            if restarts > MAX_RESTARTS:
                raise ConnectorError(f"{what}: the server keeps refusing or losing its pages; "
                                     f"the next run starts again from {position.after}")
            token, query = None, position.query()
            continue
        seen = set(position.seen)
        fresh = [obj for obj in page.objects if key(obj) not in seen]
        position.advance(page)
        if fresh:
            restarts = 0
            yield fresh
        if not page.more or not page.objects:
            return
        if page.next:
            token = page.next
            continue
        # `more` without `next`: the server pages by added_after (TAXII 2.1, section 3.4.2).
        if not fresh:
            restarts += 1
            if restarts > MAX_RESTARTS:
                raise ConnectorError(f"{what}: more objects share the instant {position.after} than one page "
                                     "holds and the server gives no next token: raise the page size")
        token, query = None, position.query()
