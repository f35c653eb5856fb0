"""A published collection's content: its ledger rows as STIX 2.1 indicators, page by page.

An object's version is its delivery's ``updated`` moment: when the share run shared it (again,
after a change) or retracted it. That moment is also its ``date_added``, the order of the
collection, and what ``added_after`` filters. Pages follow ``(date_added, row id)``, which the
``next`` token carries, so rows added in the same moment are neither skipped nor repeated.
"""

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Q, QuerySet

from connectors.taxii import stix
from exchange.models import Delivery, Indicator

MEDIA_STIX = "application/stix+json;version=2.1"
DEFAULT_LIMIT, MAX_LIMIT = 1000, 10_000
_SERVED = (Delivery.Status.SHARED, Delivery.Status.RETRACTED)
_COLUMNS = ("pk", "indicator_id", "type", "value", "status", "created", "updated", "retractions")


class BadRequest(ValueError):
    """A filter or token the server cannot read; the message says which."""


@dataclass
class Filters:
    added_after: datetime | None = None
    limit: int = DEFAULT_LIMIT
    after: tuple[datetime, int] | None = None  # from a next token
    ids: set[str] | None = None
    versions: list[datetime] | None = None
    nothing: bool = False  # a match[type] or match[spec_version] this collection has none of

    @classmethod
    def parse(cls, query) -> "Filters":
        filters = cls(added_after=_timestamp(query.get("added_after"), "added_after"),
                      limit=_limit(query.get("limit")), after=_token(query.get("next")))
        if "match[id]" in query:
            filters.ids = set(_listed(query["match[id]"]))
        types, specs = query.get("match[type]"), query.get("match[spec_version]")
        filters.nothing = bool(types and "indicator" not in _listed(types)) or bool(specs and "2.1" not in
                                                                                     _listed(specs))
        filters.versions = _versions(query.get("match[version]"))
        return filters


@dataclass
class Page:
    rows: list[tuple]
    more: bool
    next: str | None

    @property
    def first_added(self) -> datetime | None:
        return self.rows[0][6] if self.rows else None

    @property
    def last_added(self) -> datetime | None:
        return self.rows[-1][6] if self.rows else None


def page(config, filters: Filters, object_id: str | None = None) -> Page:
    """One page of ``config``'s collection under ``filters`` (and only ``object_id`` when given)."""
    rows = _served(config, filters, object_id)
    if filters.nothing:
        return Page([], False, None)
    found = list(rows.order_by("updated", "pk").values_list(*_COLUMNS)[: filters.limit + 1])
    more = len(found) > filters.limit
    found = found[: filters.limit]
    return Page(found, more, _next_token(found[-1]) if more else None)


def _served(config, filters: Filters, object_id: str | None) -> QuerySet[Delivery]:
    rows = Delivery.objects.filter(config=config, status__in=_SERVED)
    if filters.added_after:
        rows = rows.filter(updated__gt=filters.added_after)
    if filters.after:
        moment, pk = filters.after
        rows = rows.filter(Q(updated__gt=moment) | Q(updated=moment, pk__gt=pk))
    wanted = {object_id} if object_id else filters.ids
    if wanted is not None:
        rows = rows.filter(pk__in=_with_ids(config, wanted))
    if filters.versions:
        # A version is the moment to the millisecond, as STIX writes it.
        rows = rows.filter(_any(Q(updated__gte=moment, updated__lt=moment + timedelta(milliseconds=1))
                                for moment in filters.versions))
    return rows


def _with_ids(config, wanted: set[str]) -> list[int]:
    """Rows whose object id is wanted. Ids derive from (type, value) one way, so the rows are
    read to find them: a request for given ids is rare next to reading pages."""
    rows = Delivery.objects.filter(config=config, status__in=_SERVED)
    rows = rows.values_list("pk", "type", "value", "status", "retractions")
    return [row[0] for row in rows.iterator(chunk_size=5000) if served_id(*row[1:]) in wanted]


def served_id(type_: str, value: str, status: str, retractions: int) -> str:
    """The object id of a value in its current generation. STIX revocation is final: a value shared
    again after its retraction is a new object; the first generation has the id the STIX/TAXII
    connector gives the value everywhere."""
    generation = retractions - 1 if status == Delivery.Status.RETRACTED else retractions
    return stix.object_id(type_, value, generation)


def objects(rows: list[tuple]) -> list[dict]:
    """The STIX indicators of ``rows``, with their indicators' metadata (or the least an object
    needs, for a value whose indicator aged out of the store)."""
    metadata = {i.pk: i for i in Indicator.objects.filter(pk__in=[row[1] for row in rows]).only(
        "first_seen", "expires_at", "reputation", "tags", "comments")}
    return [indicator_object(row, metadata.get(row[1])) for row in rows]


def indicator_object(row: tuple, indicator: Indicator | None) -> dict:
    _, _, type_, value, status, shared, version, retractions = row
    created = min(indicator.first_seen if indicator else shared, version)
    obj = {"type": "indicator", "spec_version": "2.1", "id": served_id(type_, value, status, retractions),
           "created": stix_time(created), "modified": stix_time(version), "name": value,
           "pattern": stix.pattern(type_, value), "pattern_type": "stix", "valid_from": stix_time(created)}
    if indicator is not None:
        obj["confidence"] = min(max(indicator.reputation, 1), 10) * 10
        if indicator.expires_at and indicator.expires_at > created:
            obj["valid_until"] = stix_time(indicator.expires_at)
        if indicator.tags:
            obj["labels"] = list(indicator.tags)
        if indicator.comments:
            obj["description"] = indicator.comments
    if status == Delivery.Status.RETRACTED:
        obj["revoked"] = True
    return obj


def manifest(rows: list[tuple]) -> list[dict]:
    return [{"id": served_id(row[2], row[3], row[4], row[7]), "date_added": taxii_time(row[6]),
             "version": stix_time(row[6]), "media_type": MEDIA_STIX} for row in rows]


def stix_time(moment: datetime) -> str:
    """STIX timestamps: UTC, to the millisecond."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def taxii_time(moment: datetime) -> str:
    """TAXII date_added: UTC, to the microsecond, so that a reader's added_after is exact."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _timestamp(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: {text!r} is not a timestamp such as 2024-05-01T10:00:00.000Z") from None
    if moment.tzinfo is None:
        raise BadRequest(f"{name}: {text!r} has no time zone (end it with Z)")
    return moment


def _limit(text: str | None) -> int:
    if not text:
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise BadRequest(f"limit: {text!r} is not a whole number") from None
    if limit < 1:
        raise BadRequest("limit: give 1 or more")
    return min(limit, MAX_LIMIT)  # a server may send fewer than asked (TAXII 2.1, 3.4)


def _token(text: str | None) -> tuple[datetime, int] | None:
    if not text:
        return None
    try:
        moment, _, pk = base64.urlsafe_b64decode(text.encode() + b"==").decode().partition("|")
        return datetime.fromisoformat(moment), int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest(f"next: {text!r} is not a token this server gave") from None


def _next_token(row: tuple) -> str:
    return base64.urlsafe_b64encode(f"{row[6].isoformat()}|{row[0]}".encode()).decode().rstrip("=")


def _versions(text: str | None) -> list[datetime] | None:
    if not text:
        return None
    listed = _listed(text)
    if {"last", "first", "all"} & set(listed):
        return None  # one version per object is kept: it is the first, the last and all of them
    return [_timestamp(item, "match[version]") for item in listed]


def _listed(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _any(conditions) -> Q:
    combined = Q(pk__in=[])
    for condition in conditions:
        combined |= condition
    return combined
