"""The store's new rows in PostgreSQL's binary COPY format, encoded here rather than by the driver.

A first pull sends every indicator twice (its Indicator row and its Sighting row), thirteen or
fourteen fields each. The driver's ``write_row`` looks up a dumper for every field of every row;
here a row is its id, its type and value, and one prebuilt run of bytes for everything the rows
of a batch share (timestamps, reputation, severity, tags, comments, ...), encoded once per
distinct combination: half the client's time for the same bytes (tests/exchange/test_merge.py
checks the stored rows against the upsert's). The rows can be encoded before their ids are
drawn, and the ids written in afterwards, so that the read-ahead thread does the encoding.

The format (https://www.postgresql.org/docs/current/sql-copy.html, "Binary Format"): a signature,
then per row a 16-bit field count and per field a 32-bit length (-1: NULL) and the value in the
type's binary form (what its ``recv`` function reads): big-endian integers, timestamptz as
microseconds since 2000-01-01 UTC, text in the client encoding (Django connects in UTF8), jsonb
as a version byte (1) and the JSON text; then a 16-bit -1.
"""

import struct
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate, repeat

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # flags and header extension length: none
TRAILER = b"\xff\xff"
NULL = b"\xff\xff\xff\xff"
CHUNK_ROWS = 500  # rows sent per write: the server works on one chunk while the next is encoded

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_LENGTH = struct.Struct(">i").pack
_INT8 = struct.Struct(">iq").pack
_INT4 = struct.Struct(">ii").pack
_INT2 = struct.Struct(">ih").pack
_TRUE, _FALSE = b"\x00\x00\x00\x01\x01", b"\x00\x00\x00\x01\x00"
_JSONB_VERSION = b"\x01"
_FIELDS = struct.Struct(">h").pack
_ROW_START = struct.Struct(">hiq")  # a row's field count, then its first field, an int8 (an id)
_ID_PLACEHOLDER = bytes(_ROW_START.size)


def timestamptz(moment: datetime | None) -> bytes:
    """A timestamptz field; ``moment`` must be aware (a naive one raises TypeError)."""
    if moment is None:
        return NULL
    return _INT8(8, (moment - _EPOCH) // _MICROSECOND)


def text(value: str) -> bytes:
    """A text, varchar or char field."""
    data = value.encode()
    return _LENGTH(len(data)) + data


def jsonb(json_text: str) -> bytes:
    """A jsonb field from JSON text (the server parses and checks it, as it would the text form)."""
    data = _JSONB_VERSION + json_text.encode()
    return _LENGTH(len(data)) + data


def int8(value: int) -> bytes:
    return _INT8(8, value)


@dataclass(frozen=True)
class StoreBodies:
    """The COPY data of new indicators' Indicator and Sighting rows, but for their ids: all that
    does not depend on the ids, so that it can be encoded before they are drawn (by the
    read-ahead thread, while the database writes the batch before). Each row starts with a
    placeholder where ``store_rows`` writes its field count and id."""

    indicators: bytearray
    sightings: bytearray
    indicator_starts: list[int]  # where each row starts in ``indicators``
    sighting_starts: list[int]


def store_bodies(rows: Sequence[tuple], source_id: int, now: datetime) -> StoreBodies:
    """The rows ``store_rows`` completes, for merge rows (``exchange.merge.STAGE_COLUMNS``)."""
    source, stamp = int8(source_id), timestamptz(now)
    stamps = stamp + stamp
    shared: dict[tuple, tuple[bytes, bytes]] = {}  # per (first, last, expires, ..., comments): the two runs
    kinds: dict[str, bytes] = {}
    tails: dict[int, bytes] = {}  # per hits: hits, created, updated
    indicators: list[bytes] = []
    sightings: list[bytes] = []
    add_indicator, add_sighting = indicators.append, sightings.append
    for kind, value, first, last, expires, reputation, severity, tags, comments, external, hits in rows:
        key = (first, last, expires, reputation, severity, tags, comments)
        runs = shared.get(key)
        if runs is None:
            seen = timestamptz(first) + timestamptz(last) + timestamptz(expires)
            metadata = _INT2(2, reputation) + text(severity) + jsonb(tags) + text(comments)
            active = _TRUE if expires is None or expires > now else _FALSE
            runs = shared[key] = (seen + active + metadata + source + stamps, source + seen + metadata)
        kind_field = kinds.get(kind)
        if kind_field is None:
            kind_field = kinds[kind] = text(kind)
        tail = tails.get(hits)
        if tail is None:
            tail = tails[hits] = _INT4(4, hits) + stamps
        data = value.encode()
        add_indicator(b"".join((_ID_PLACEHOLDER, kind_field, _LENGTH(len(data)), data, runs[0])))
        data = external.encode()
        add_sighting(b"".join((_ID_PLACEHOLDER, runs[1], _LENGTH(len(data)), data, tail)))
    return StoreBodies(_joined(indicators), _joined(sightings), _starts(indicators), _starts(sightings))


def _joined(rows: list[bytes]) -> bytearray:
    return bytearray().join((SIGNATURE, *rows, TRAILER))


def _starts(rows: list[bytes]) -> list[int]:
    """Where each of ``rows`` starts once joined after the signature."""
    starts = list(accumulate(map(len, rows), initial=len(SIGNATURE)))
    starts.pop()
    return starts


def store_rows(bodies: StoreBodies, ids: Sequence[int]) -> tuple[bytearray, bytearray]:
    """The whole COPY data of the Indicator and Sighting rows (``exchange.merge._NEW_INDICATOR_COLUMNS``
    and ``exchange.merge.SIGHTING_COLUMNS``), ``bodies`` with the ids written in (in place). No
    Python step per row, so that the thread that writes to the database spends next to no time here."""
    count = len(ids)
    if len(bodies.indicator_starts) != count:
        raise ValueError(f"{count} ids for {len(bodies.indicator_starts)} rows")
    for data, starts, fields in ((bodies.indicators, bodies.indicator_starts, 14),
                                 (bodies.sightings, bodies.sighting_starts, 13)):
        deque(map(_ROW_START.pack_into, repeat(data, count), starts, repeat(fields, count), repeat(8, count), ids),
              maxlen=0)
    return bodies.indicators, bodies.sightings


def stage_rows(rows: Sequence[tuple]) -> Iterator[bytes]:
    """Merge rows (``exchange.merge.STAGE_COLUMNS``) for the staging table, in chunks."""
    shared: dict[tuple, bytes] = {}
    kinds: dict[str, bytes] = {}
    count = _FIELDS(11)  # type, value, first_seen, last_seen, expires_at, reputation, severity, tags, ...
    chunk = [SIGNATURE]
    add = chunk.append
    for kind, value, first, last, expires, reputation, severity, tags, comments, external, hits in rows:
        key = (first, last, expires, reputation, severity, tags, comments)
        run = shared.get(key)
        if run is None:
            run = shared[key] = (timestamptz(first) + timestamptz(last) + timestamptz(expires)
                                 + _INT2(2, reputation) + text(severity) + jsonb(tags) + text(comments))
        kind_field = kinds.get(kind)
        if kind_field is None:
            kind_field = kinds[kind] = text(kind)
        data, external_data = value.encode(), external.encode()
        add(b"".join((count, kind_field, _LENGTH(len(data)), data, run, _LENGTH(len(external_data)), external_data,
                      _INT4(4, hits))))
        if len(chunk) >= CHUNK_ROWS:
            yield b"".join(chunk)
            chunk.clear()
    chunk.append(TRAILER)
    yield b"".join(chunk)

