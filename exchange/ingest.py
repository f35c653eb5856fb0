"""From a connector's raw records to the store: normalize, dedupe within the batch, merge.

A record that fails normalization is rejected with its reason and the rest of the batch goes
on. Timestamps a source gives in the future are clamped to now, so a wrong clock cannot keep
an indicator alive for years.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from connectors.base import Record
from exchange.merge import merge
from exchange.models import Severity
from exchange.normalize import Rejected, normalize_any

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


# Row layout, as merge.STAGE_COLUMNS: type, value, first_seen, last_seen, expires_at,
# reputation, severity, tags, comments, external_id, hits.
_FIRST, _LAST, _EXPIRES, _REPUTATION, _SEVERITY, _TAGS, _COMMENTS, _EXTERNAL, _HITS = range(2, 11)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def clean_severity(value) -> str:
    known = _SEVERITY_OF.get(value)
    if known is not None:
        return known
    text = str(value or "").strip().lower()
    text = _SEVERITY_SYNONYMS.get(text, text)
    return text if text in _SEVERITIES else Severity.UNKNOWN


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


@lru_cache(maxsize=4096)
def _tags_of(tags: tuple | str) -> tuple[str, ...]:
    # The records of a source repeat a handful of tag lists: clean each once.
    return tuple(clean_tags(tags))


@lru_cache(maxsize=4096)
def tags_json(tags: tuple[str, ...]) -> str:
    """The stored form of a cleaned tag list (what Django's JSONField writes)."""
    return json.dumps(list(tags))


class Preparer:
    """Turns one source's records into merge rows; keeps the source's parameters at hand."""

    def __init__(self, config, now: datetime):
        self.now = now
        self.reputation = config.reputation
        self.aging = timedelta(days=config.aging_days) if config.aging_days else None
        self._times: dict[tuple, tuple] = {}

    def times(self, first_seen: datetime | None, last_seen: datetime | None) -> tuple:
        """``(first, last, expires)``: clamped to now, made aware, with the sighting's expiry.
        The records of a batch share a few timestamps: each pair is worked out once."""
        key = (first_seen, last_seen)
        known = self._times.get(key)
        if known is None:
            now = self.now
            last = _aware(last_seen) or now
            if last > now:
                last = now
            first = _aware(first_seen) or last
            if first > last:
                first = last
            known = self._times[key] = (first, last, last + self.aging if self.aging else None)
        return known

    def row(self, record: Record) -> list:
        if record.error:
            raise Rejected(record.error)
        type_, value = normalize_any(record.type, record.value)
        first, last, expires = self.times(record.first_seen, record.last_seen)
        reputation = self.reputation if record.reputation is None else _reputation(record.reputation, self.reputation)
        tags = record.tags
        if tags:
            tags = _tags_of(tuple(tags) if isinstance(tags, list) else tags)
        comments = record.comments
        if comments and len(comments) > MAX_COMMENTS:
            comments = comments[:MAX_COMMENTS]
        external = record.external_id
        if external and len(external) > 255:
            external = external[:255]
        return [type_, value, first, last, expires, reputation, _SEVERITY_OF.get(record.severity) or
                clean_severity(record.severity), tags or (), comments or "", external or "", 1]


def _reputation(value, default: int) -> int:
    try:
        return min(max(int(value), 1), 10)
    except (TypeError, ValueError):
        return default


def _combine(kept: list, new: list) -> None:
    """Fold a second report of the same indicator in one batch into the first."""
    if new[_FIRST] < kept[_FIRST]:
        kept[_FIRST] = new[_FIRST]
    if new[_LAST] >= kept[_LAST]:
        kept[_LAST] = new[_LAST]
        kept[_EXPIRES] = new[_EXPIRES]
    kept[_REPUTATION], kept[_SEVERITY], kept[_COMMENTS] = new[_REPUTATION], new[_SEVERITY], new[_COMMENTS]
    if new[_EXTERNAL]:
        kept[_EXTERNAL] = new[_EXTERNAL]
    if new[_TAGS] != kept[_TAGS]:
        kept[_TAGS] = tuple(sorted(set(kept[_TAGS]) | set(new[_TAGS]))[:MAX_TAGS])
    kept[_HITS] += 1


def prepare(config, records: list[Record], now: datetime, first_position: int = 0):
    """``(rows, rejections)``: deduplicated merge rows and the records that failed."""
    row_of = Preparer(config, now).row
    rows: dict[tuple[str, str], list] = {}
    rejections: list[Rejection] = []
    for index, record in enumerate(records):
        try:
            row = row_of(record)
        except Rejected as exc:
            position = record.position if record.position is not None else first_position + index
            rejections.append(Rejection(position, record.type or "", str(record.value)[:1000], str(exc)))
            continue
        key = (row[0], row[1])
        kept = rows.get(key)
        if kept is None:
            rows[key] = row
        else:
            _combine(kept, row)
    for row in rows.values():
        row[_TAGS] = tags_json(row[_TAGS])
    return [tuple(row) for row in rows.values()], rejections


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


def prepare_batch(config, records: list[Record], now: datetime, first_position: int = 0) -> Prepared:
    rows, rejections = prepare(config, records, now, first_position)
    return Prepared(rows, rejections, len(records), now)


def ingest_batch(config, records: list[Record], now: datetime, first_position: int = 0,
                 hints: MergeHints | None = None) -> BatchResult:
    """Normalize and merge one batch from ``config``; call inside a transaction."""
    return merge_prepared(config, prepare_batch(config, records, now, first_position), hints)


def merge_prepared(config, prepared: Prepared, hints: MergeHints | None = None) -> BatchResult:
    """The merge half of :func:`ingest_batch`; call inside a transaction."""
    rows, rejections = prepared.rows, prepared.rejections
    merged = merge(rows, source_id=config.pk, override=config.override_reputation, now=prepared.now,
                   drop_unchanged=hints.drop_unchanged if hints else True, all_new=hints.all_new if hints else False)
    if hints:
        hints.learn(len(rows), merged.created, merged.updated)
    received = prepared.received
    rejected = len(rejections)
    return BatchResult(
        received=received,
        created=merged.created,
        updated=merged.updated,
        unchanged=received - rejected - merged.created - merged.updated,
        rejected=rejected,
        rejections=rejections,
    )
