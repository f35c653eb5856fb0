"""From a connector's raw records to the store: normalize, dedupe within the batch, merge.

A record that fails normalization is rejected with its reason and the rest of the batch goes
on. Timestamps a source gives in the future are clamped to now, so a wrong clock cannot keep
an indicator alive for years.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from operator import itemgetter

from django.db import connection

from connectors.base import Record
from exchange import pgcopy
from exchange.merge import merge
from exchange.models import Severity
from exchange.normalize import Rejected, detect, normalize
from exchange.withdraw import expire_withdrawn

MAX_TAGS = 50
MAX_TAG_LENGTH = 100
MAX_COMMENTS = 4000
_SEVERITIES = {choice.value for choice in Severity}
_SEVERITY_SYNONYMS = {"info": "low", "informational": "low", "moderate": "medium", "severe": "high"}


@dataclass
class Rejection:
    position: int
    type: str
    value: str
    reason: str


@dataclass
class BatchResult:
    received: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    withdrawn: int = 0  # records of values the source withdrew
    expired: int = 0  # this source's sightings that expired for them


# Row layout, as merge.STAGE_COLUMNS: type, value, first_seen, last_seen, expires_at,
# reputation, severity, tags, comments, external_id, hits.
_FIRST, _LAST, _EXPIRES, _REPUTATION, _SEVERITY, _TAGS, _COMMENTS, _EXTERNAL, _HITS = range(2, 11)
_VALUE = itemgetter(1)
_UNSEEN = object()


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def clean_severity(value) -> str:
    known = _SEVERITY_OF.get(value) if isinstance(value, str | None) else None
    if known is not None:
        return known
    text = str(value or "").strip().lower()
    text = _SEVERITY_SYNONYMS.get(text, text)
    cleaned = text if text in _SEVERITIES else Severity.UNKNOWN
    if isinstance(value, str) and len(_SEVERITY_OF) < 1000:
        _SEVERITY_OF[value] = cleaned  # a source spells its severities a few ways: learn them
    return cleaned


_SEVERITY_OF = {None: Severity.UNKNOWN, "": Severity.UNKNOWN, **{value: value for value in _SEVERITIES},
                **{value.capitalize(): value for value in _SEVERITIES}}


def clean_tags(tags) -> list[str]:
    if not tags:
        return []
    if isinstance(tags, str):
        tags = tags.split(",")
    cleaned = {str(tag).strip()[:MAX_TAG_LENGTH] for tag in tags}
    cleaned.discard("")
    return sorted(cleaned)[:MAX_TAGS]


def _tags_of(tags) -> str:
    return _stored_tags(tuple(tags) if isinstance(tags, list) else tags) if tags else "[]"


@lru_cache(maxsize=4096)
def _stored_tags(tags: tuple | str) -> str:
    # The records of a source repeat a handful of tag lists: clean and encode each once.
    return tags_json(tuple(clean_tags(tags)))


@lru_cache(maxsize=4096)
def tags_json(tags: tuple[str, ...]) -> str:
    """The stored form of a cleaned tag list (what Django's JSONField writes)."""
    return json.dumps(list(tags))


class _Times:
    """``(first, last, expires)`` of a record: clamped to now, made aware, with the sighting's
    expiry. The records of a batch share a few timestamps: each pair is worked out once."""

    def __init__(self, config, now: datetime):
        self.now = now
        self.aging = timedelta(days=config.aging_days) if config.aging_days else None
        self._known: dict[tuple, tuple] = {}

    def __call__(self, first_seen: datetime | None, last_seen: datetime | None) -> tuple:
        key = (first_seen, last_seen)
        known = self._known.get(key)
        if known is None:
            now = self.now
            last = _aware(last_seen) or now
            if last > now:
                last = now
            first = _aware(first_seen) or last
            if first > last:
                first = last
            known = self._known[key] = (first, last, last + self.aging if self.aging else None)
        return known


def _reputation(value, default: int) -> int:
    try:
        return min(max(int(value), 1), 10)
    except (TypeError, ValueError):
        return default


def _combined(kept: tuple, new: tuple) -> tuple:
    """A second report of the same indicator in one batch, folded into the first."""
    row = list(kept)
    if new[_FIRST] < row[_FIRST]:
        row[_FIRST] = new[_FIRST]
    if new[_LAST] >= row[_LAST]:
        row[_LAST] = new[_LAST]
        row[_EXPIRES] = new[_EXPIRES]
    row[_REPUTATION], row[_SEVERITY], row[_COMMENTS] = new[_REPUTATION], new[_SEVERITY], new[_COMMENTS]
    if new[_EXTERNAL]:
        row[_EXTERNAL] = new[_EXTERNAL]
    if new[_TAGS] != row[_TAGS]:
        union = set(json.loads(row[_TAGS])) | set(json.loads(new[_TAGS]))
        row[_TAGS] = tags_json(tuple(sorted(union)[:MAX_TAGS]))
    row[_HITS] += 1
    return tuple(row)


def prepare(config, records: list[Record], now: datetime, first_position: int = 0,
            withdrawn: list[tuple[str, str]] | None = None):
    """``(rows, rejections)``: deduplicated merge rows and the records that failed; the
    ``(type, value)`` of withdrawn records go to ``withdrawn``.

    One loop with everything at hand in locals: it runs for every record a source sends, and is
    most of a pull's Python time (benchmarks/ingest.py)."""
    times = _Times(config, now)
    default_reputation = config.reputation
    severity_of = _SEVERITY_OF.get
    rows: dict[tuple[str, str], tuple] = {}
    rejections: list[Rejection] = []
    # A source hands the same objects to many records in a row (its tag list, its run's timestamps):
    # they are worked out again only when they change, told by identity (the records cannot change
    # while this runs).
    seen_first = seen_last = seen_tags = _UNSEEN
    stored_tags = "[]"
    for index, record in enumerate(records):
        try:
            if record.error:
                raise Rejected(record.error)
            type_ = record.type or detect(record.value)
            value = normalize(type_, record.value)
            if record.withdrawn:
                if withdrawn is not None:
                    withdrawn.append((type_, value))
                continue
        except Rejected as exc:
            position = record.position if record.position is not None else first_position + index
            rejections.append(Rejection(position, record.type or "", str(record.value)[:1000], str(exc)))
            continue
        if record.first_seen is not seen_first or record.last_seen is not seen_last:
            seen_first, seen_last = record.first_seen, record.last_seen
            first, last, expires = times(seen_first, seen_last)
        reputation = record.reputation
        if reputation is not None:
            reputation = _reputation(reputation, default_reputation)
        if record.tags is not seen_tags:
            seen_tags = record.tags
            stored_tags = _tags_of(seen_tags)
        comments = record.comments or ""
        if len(comments) > MAX_COMMENTS:
            comments = comments[:MAX_COMMENTS]
        external = record.external_id or ""
        if len(external) > 255:
            external = external[:255]
        row = (type_, value, first, last, expires, default_reputation if reputation is None else reputation,
               severity_of(record.severity) or clean_severity(record.severity), stored_tags, comments, external, 1)
        key = (type_, value)
        kept = rows.get(key)
        rows[key] = row if kept is None else _combined(kept, row)
    # In value order: the store's unique (type, value) index then takes each type's keys in one
    # sweep from left to right, each leaf page read once, rather than at random (benchmarks/ingest.py).
    return sorted(rows.values(), key=_VALUE), rejections


class MergeHints:
    """A run's guesses about its next batch, learnt from the last one, that make the merge faster;
    a wrong guess costs time, never correctness:

    - ``all_new``: every indicator is new (a first pull): try COPYing the batch straight in;
    - ``drop_unchanged``: some rows repeat what is stored (a re-pull): drop them before writing.
    """

    def __init__(self, source_has_sightings: bool):
        self.all_new = not source_has_sightings
        self.drop_unchanged = source_has_sightings

    def learn(self, rows: int, created: int, updated: int) -> None:
        self.all_new = rows > 0 and created == rows
        self.drop_unchanged = rows - created - updated > 0


@dataclass
class Prepared:
    """A batch normalized and deduplicated, ready to merge."""

    rows: list[tuple]
    rejections: list[Rejection]
    received: int
    now: datetime
    # The rows' COPY data, if made ahead (on PostgreSQL): for new indicators, or for the staging table.
    encoded: pgcopy.StoreBodies | None = None
    staged: list[bytes] | None = None
    # (type, value) the source withdrew: its sightings of them expire when the batch merges.
    withdrawn: list[tuple[str, str]] = field(default_factory=list)


# On PostgreSQL, how a configuration's last batch was written: "new" (COPY straight into the
# store: a first pull) or "stage" (the staging table and the upserts). Its next batches are
# encoded for that COPY as they are prepared, in the pull's read-ahead thread, so that the
# thread that writes to the database has only to send them. Both threads share one interpreter
# lock: the less the writer has to do, the sooner it hands the database its next rows
# (benchmarks/ingest.py). A wrong guess costs the encoding, nothing else.
_ENCODE_AHEAD: dict[int, str] = {}


def prepare_batch(config, records: list[Record], now: datetime, first_position: int = 0) -> Prepared:
    withdrawn: list[tuple[str, str]] = []
    rows, rejections = prepare(config, records, now, first_position, withdrawn)
    # Withdrawn records are counted apart: received are the records offered to the store.
    prepared = Prepared(rows, rejections, len(records) - len(withdrawn), now, withdrawn=withdrawn)
    ahead = _ENCODE_AHEAD.get(config.pk) if rows else None
    if ahead == "new":
        prepared.encoded = pgcopy.store_bodies(rows, config.pk, now)
    elif ahead == "stage":
        prepared.staged = list(pgcopy.stage_rows(rows))
    return prepared


def ingest_batch(config, records: list[Record], now: datetime, first_position: int = 0,
                 hints: MergeHints | None = None) -> BatchResult:
    """Normalize and merge one batch from ``config``; call inside a transaction."""
    return merge_prepared(config, prepare_batch(config, records, now, first_position), hints)


def merge_prepared(config, prepared: Prepared, hints: MergeHints | None = None) -> BatchResult:
    """The merge half of :func:`ingest_batch`; call inside a transaction."""
    rows, rejections = prepared.rows, prepared.rejections
    merged = merge(rows, source_id=config.pk, override=config.override_reputation, now=prepared.now,
                   drop_unchanged=hints.drop_unchanged if hints else True, all_new=hints.all_new if hints else False,
                   encoded=prepared.encoded, staged=prepared.staged)
    expired = expire_withdrawn(config, prepared.withdrawn, prepared.now) if prepared.withdrawn else 0
    if hints:
        hints.learn(len(rows), merged.created, merged.updated)
        if connection.vendor == "postgresql":
            _ENCODE_AHEAD[config.pk] = "new" if hints.all_new else "stage"
    received = prepared.received
    rejected = len(rejections)
    return BatchResult(
        received=received,
        created=merged.created,
        updated=merged.updated,
        unchanged=received - rejected - merged.created - merged.updated,
        rejected=rejected,
        rejections=rejections,
        withdrawn=len(prepared.withdrawn),
        expired=expired,
    )
