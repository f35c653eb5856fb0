"""Merge a batch of normalized rows into the store with two set-based upserts.

The batch is loaded into a temporary staging table (binary COPY on PostgreSQL, one
``executemany`` on SQLite), then one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` writes the
indicators and a second one the sightings. Both databases run the same statements, generated
here from one description of the merge rules, so they cannot drift apart:

- first_seen takes the minimum and last_seen the maximum, whatever else happens;
- ``expires_at`` is the latest sighting expiry (NULL, never, beats any date), and an indicator
  is active while it has not passed;
- the metadata (reputation, severity, tags, comments) follows the owning source: it is replaced
  when the batch comes from that owner, when the indicator has no owner, or when the batch's
  source has override on and a higher reputation (DESIGN.md, "Override reputation");
- a sighting holds its source's latest report; ``hits`` counts reports that changed it.

Rows whose merged values equal the stored ones are not written, so a re-pull of unchanged data
costs reads only.
"""

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from django.db import IntegrityError, connection, transaction

from exchange import pgcopy
from exchange.models import Indicator, Sighting

STAGE = "cte_stage"
STAGE_COLUMNS = (
    "type", "value", "first_seen", "last_seen", "expires_at",
    "reputation", "severity", "tags", "comments", "external_id", "hits",
)
_STAGE_DDL = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS {stage} (type varchar(10), value varchar(2048), "
    "first_seen {ts}, last_seen {ts}, expires_at {ts}, reputation smallint, severity varchar(10), "
    "tags {json}, comments text, external_id varchar(255), hits integer)"
)


@dataclass(frozen=True)
class Merged:
    created: int
    updated: int
    unchanged: int = 0  # rows the read-only pass dropped (when it ran)


SIGHTING_COLUMNS = ("indicator_id", "source_id", "first_seen", "last_seen", "expires_at", "reputation",
                    "severity", "tags", "comments", "external_id", "hits", "created", "updated")


def _later(old: str, new: str) -> str:
    """The later of two expiries where NULL means never."""
    return f"CASE WHEN {old} IS NULL OR {new} IS NULL THEN NULL WHEN {new} > {old} THEN {new} ELSE {old} END"


_TAKES_OVER = (
    "(i.source_id IS NULL OR i.source_id = %(source)s "
    "OR (%(override)s AND excluded.reputation > i.reputation))"
)


def _indicator_updates() -> dict[str, str]:
    expires = _later("i.expires_at", "excluded.expires_at")
    updates = {
        "first_seen": "CASE WHEN excluded.first_seen < i.first_seen THEN excluded.first_seen ELSE i.first_seen END",
        "last_seen": "CASE WHEN excluded.last_seen > i.last_seen THEN excluded.last_seen ELSE i.last_seen END",
        "expires_at": expires,
        "active": f"({expires} IS NULL OR {expires} > %(now)s)",
    }
    for column in ("reputation", "severity", "tags", "comments"):
        updates[column] = f"CASE WHEN {_TAKES_OVER} THEN excluded.{column} ELSE i.{column} END"
    updates["source_id"] = f"CASE WHEN {_TAKES_OVER} THEN %(source)s ELSE i.source_id END"
    return updates


def _sighting_updates() -> dict[str, str]:
    return {
        "first_seen": "CASE WHEN excluded.first_seen < g.first_seen THEN excluded.first_seen ELSE g.first_seen END",
        "last_seen": "CASE WHEN excluded.last_seen > g.last_seen THEN excluded.last_seen ELSE g.last_seen END",
        "expires_at": "CASE WHEN excluded.last_seen >= g.last_seen THEN excluded.expires_at ELSE g.expires_at END",
        "reputation": "excluded.reputation",
        "severity": "excluded.severity",
        "tags": "excluded.tags",
        "comments": "excluded.comments",
        "external_id": "CASE WHEN excluded.external_id <> '' THEN excluded.external_id ELSE g.external_id END",
    }


class _Dialect:
    vendor: str
    distinct = "IS DISTINCT FROM"
    tags = "s.tags"
    timestamp_type = "timestamptz"
    # The staged tags: jsonb on PostgreSQL, read once by the COPY, rather than text cast to jsonb
    # by each statement that compares or writes them (the unchanged pass did it twice per row).
    json_type = "jsonb"

    def __init__(self):
        self.unchanged_sql = self._unchanged_sql()
        self.indicator_sql = self._indicator_sql()
        self.sighting_sql = self._sighting_sql()

    # Every lookup below is a scalar subquery on a unique index: PostgreSQL never turns one into a
    # join, so the plan stays "probe the index for each staged row" whatever the statistics say
    # (temporary tables have none, and the store's go stale during a large first pull).

    def _unchanged_sql(self) -> str:
        """Drop the staged rows that would change neither their indicator nor this source's
        sighting: a read-only pass, so that re-reading unchanged data writes nothing."""

        def same(alias: str, updates: dict[str, str]) -> str:
            old = ", ".join(f"{alias}.{column}" for column in updates)
            new = ", ".join(e.replace("excluded.tags", self.tags).replace("excluded.", "s.") for e in updates.values())
            return f"NOT (({old}) {self.distinct} ({new}))"

        return (
            f"DELETE FROM {STAGE} AS s WHERE (SELECT {same('i', _indicator_updates())} "
            f"AND {same('g', _sighting_updates())} FROM {Indicator._meta.db_table} i "
            f"JOIN {Sighting._meta.db_table} g ON g.indicator_id = i.id AND g.source_id = %(source)s "
            "WHERE i.type = s.type AND i.value = s.value) IS TRUE"
        )

    def _upsert(self, table: str, alias: str, columns: list[str], select: str, target: str,
                updates: dict[str, str], extra: dict[str, str]) -> str:
        assignments = {**updates, **extra}
        old = ", ".join(f"{alias}.{column}" for column in updates)
        new = ", ".join(updates.values())
        return (
            f"INSERT INTO {table} AS {alias} ({', '.join(columns)}) {select} "
            f"ON CONFLICT ({target}) DO UPDATE SET "
            + ", ".join(f"{column} = {expression}" for column, expression in assignments.items())
            + f" WHERE ({old}) {self.distinct} ({new})"
        )

    def _indicator_sql(self) -> str:
        table = Indicator._meta.db_table
        select = (
            "SELECT s.type, s.value, s.first_seen, s.last_seen, s.expires_at, "
            f"(s.expires_at IS NULL OR s.expires_at > %(now)s), s.reputation, s.severity, {self.tags}, s.comments, "
            f"%(source)s, %(now)s, %(now)s FROM {STAGE} s WHERE true ORDER BY s.type, s.value"
        )
        columns = ["type", "value", "first_seen", "last_seen", "expires_at", "active", "reputation",
                   "severity", "tags", "comments", "source_id", "created", "updated"]
        return self._upsert(table, "i", columns, select, "type, value", _indicator_updates(), {"updated": "%(now)s"})

    def _sighting_sql(self) -> str:
        table = Sighting._meta.db_table
        indicator_id = (f"(SELECT i.id FROM {Indicator._meta.db_table} i "
                        "WHERE i.type = s.type AND i.value = s.value)")
        select = (
            f"SELECT {indicator_id}, %(source)s, s.first_seen, s.last_seen, s.expires_at, s.reputation, s.severity, "
            f"{self.tags}, s.comments, s.external_id, s.hits, %(now)s, %(now)s "
            f"FROM {STAGE} s WHERE true ORDER BY 1"
        )
        extra = {"hits": "g.hits + excluded.hits", "updated": "%(now)s"}
        return self._upsert(table, "g", list(SIGHTING_COLUMNS), select, "indicator_id, source_id",
                            _sighting_updates(), extra)

    def stage(self, cursor, rows: list[tuple], encoded: list[bytes] | None = None) -> None:
        cursor.execute(_STAGE_DDL.format(stage=STAGE, ts=self.timestamp_type, json=self.json_type))
        self.clear(cursor)
        self.load(cursor, rows, encoded)

    def clear(self, cursor) -> None:
        cursor.execute(f"DELETE FROM {STAGE}")

    def load(self, cursor, rows: list[tuple], encoded: list[bytes] | None = None) -> None:
        """Fill the staging table with ``rows`` (or their COPY data, ``encoded``, where there is COPY)."""
        raise NotImplementedError

    def upsert_indicators(self, cursor, params: dict) -> tuple[int, int]:
        """Write the indicators; return how many were created, and how many of the batch's
        sightings were written with them (those rows leave the staging table)."""
        raise NotImplementedError


class _PostgreSQL(_Dialect):
    vendor = "postgresql"

    def _indicator_sql(self) -> str:
        # One statement: upsert the indicators; a new indicator's sighting is new too, so insert it
        # from the upsert's RETURNING (no second lookup, no conflict check) and take its row out of
        # the staging table. xmax is 0 on a row version this statement inserted, not on an update.
        return (
            f"WITH up AS ({super()._indicator_sql()} RETURNING i.id, i.type, i.value, (i.xmax = 0) AS inserted), "
            f"fresh AS (INSERT INTO {Sighting._meta.db_table} ({', '.join(SIGHTING_COLUMNS)}) "
            "SELECT up.id, %(source)s, s.first_seen, s.last_seen, s.expires_at, s.reputation, s.severity, "
            f"{self.tags}, s.comments, s.external_id, s.hits, %(now)s, %(now)s "
            f"FROM up JOIN {STAGE} s ON s.type = up.type AND s.value = up.value WHERE up.inserted "
            "ORDER BY up.id RETURNING 1), "
            f"done AS (DELETE FROM {STAGE} s USING up WHERE s.type = up.type AND s.value = up.value "
            "AND up.inserted RETURNING 1) "
            "SELECT (SELECT count(*) FROM fresh), (SELECT count(*) FROM done)"
        )

    def clear(self, cursor) -> None:
        # The batch and its cursor commit together, so a commit lost in a crash only means the
        # batch is merged again: no need to wait for the WAL flush.
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        # Temporary tables are never vacuumed: TRUNCATE, not DELETE, or they bloat.
        cursor.execute(f"TRUNCATE {STAGE}")

    def load(self, cursor, rows: list[tuple], encoded: list[bytes] | None = None) -> None:
        _copy_encoded(cursor, STAGE, STAGE_COLUMNS, encoded or pgcopy.stage_rows(rows))

    def upsert_indicators(self, cursor, params: dict) -> tuple[int, int]:
        cursor.execute(self.indicator_sql, params)
        fresh, done = cursor.fetchone()
        return fresh, fresh

    def insert_new(self, rows: list[tuple], source_id: int, now: datetime,
                   encoded: pgcopy.StoreBodies | None = None) -> bool:
        """Write a batch of indicators none of which exists yet, with their sightings, by binary
        COPY straight into the two tables: what the upserts would write, at COPY speed. Returns
        False, having written nothing, if one of them exists after all (a unique violation).
        ``encoded``: the rows' ``pgcopy.store_bodies`` for ``source_id`` and ``now``, if made already."""
        bodies = encoded or pgcopy.store_bodies(rows, source_id, now)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                (ids,) = _reserve_ids(cursor, len(rows), Indicator._meta.db_table, synchronous_commit_off=True)
                indicators, sightings = pgcopy.store_rows(bodies, ids)
                _copy_encoded(cursor, Indicator._meta.db_table, _NEW_INDICATOR_COLUMNS, (indicators,))
                _copy_encoded(cursor, Sighting._meta.db_table, SIGHTING_COLUMNS, (sightings,))
        except IntegrityError:
            return False
        return True


def _reserve_ids(cursor, count: int, *tables: str, synchronous_commit_off: bool = False) -> list[range | list[int]]:
    """``count`` new ids from each of ``tables``' sequences, in one round trip (with, if asked,
    ``SET LOCAL synchronous_commit TO OFF``: see ``clear``). They are one contiguous range per
    table unless another session drew from a sequence meanwhile: then (only) that table's ids are
    drawn again, and fetched one by one."""
    # Each sequence cast to regclass inside a scalar subquery: looked up once, not once per row
    # (where the cast cost more than the nextval itself).
    sequence = "(SELECT pg_get_serial_sequence(%s, 'id')::regclass)"
    draws = ", ".join(f"nextval({sequence}) AS id{k}" for k in range(len(tables)))
    spans = ", ".join(f"min(id{k}), max(id{k})" for k in range(len(tables)))
    setting = "set_config('synchronous_commit', 'off', true), " if synchronous_commit_off else ""
    cursor.execute(f"SELECT {setting}count(*), {spans} FROM (SELECT {draws} FROM generate_series(1, %s)) AS drawn",
                   [*tables, count])
    drawn, *bounds = cursor.fetchone()[1 if synchronous_commit_off else 0:]
    ids: list[range | list[int]] = []
    for table, low, high in zip(tables, bounds[::2], bounds[1::2], strict=True):
        if high - low + 1 == drawn:  # sequence values are distinct: as many as the span holds is all of them
            ids.append(range(low, high + 1))
        else:  # scattered (the ids drawn are left unused: a sequence's gaps are harmless)
            cursor.execute(f"SELECT array_agg(nextval({sequence})) FROM generate_series(1, %s)", [table, count])
            ids.append(cursor.fetchone()[0])
    return ids


def _copy_encoded(cursor, table: str, columns: tuple[str, ...], chunks) -> None:
    """COPY rows already in the binary format (``exchange.pgcopy``): ``chunks`` of bytes, the
    first starting with the signature, the last ending with the trailer."""
    with connection.wrap_database_errors, \
            cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        for chunk in chunks:
            copy.write(chunk)


_NEW_INDICATOR_COLUMNS = ("id", "type", "value", "first_seen", "last_seen", "expires_at", "active", "reputation",
                          "severity", "tags", "comments", "source_id", "created", "updated")


class _SQLite(_Dialect):
    vendor = "sqlite"
    distinct = "IS NOT"
    tags = "s.tags"
    timestamp_type = "text"
    json_type = "text"

    def load(self, cursor, rows: list[tuple], encoded: list[bytes] | None = None) -> None:
        adapt = _sqlite_datetime
        cursor.executemany(
            f"INSERT INTO {STAGE} ({', '.join(STAGE_COLUMNS)}) VALUES ({', '.join(['%s'] * len(STAGE_COLUMNS))})",
            [
                (t, v, adapt(first), adapt(last), adapt(expires), rep, sev, tags, com, ext, hits)
                for t, v, first, last, expires, rep, sev, tags, com, ext, hits in rows
            ],
        )

    def upsert_indicators(self, cursor, params: dict) -> int:
        # SQLite cannot tell an upsert's inserts from its updates: count the new keys first.
        # Writers are serialized (BEGIN IMMEDIATE), so nothing lands in between.
        cursor.execute(
            f"SELECT count(*) FROM {STAGE} s WHERE NOT EXISTS (SELECT 1 FROM {Indicator._meta.db_table} i "
            "WHERE i.type = s.type AND i.value = s.value)"
        )
        created = cursor.fetchone()[0]
        cursor.execute(self.indicator_sql, params)
        return created, 0

    @staticmethod
    def adapt(value: datetime):
        return _sqlite_datetime(value)


@lru_cache(maxsize=4096)
def _sqlite_datetime(value: datetime | None) -> str | None:
    # Records of one feed share a few timestamps: convert each once.
    return connection.ops.adapt_datetimefield_value(value)


_DIALECTS: dict[str, _Dialect] = {}


def _dialect() -> _Dialect:
    vendor = connection.vendor
    if vendor not in _DIALECTS:
        classes = {"postgresql": _PostgreSQL, "sqlite": _SQLite}
        if vendor not in classes:
            raise NotImplementedError(f"the merge supports PostgreSQL and SQLite, not {vendor}")
        _DIALECTS[vendor] = classes[vendor]()
    return _DIALECTS[vendor]


def merge(rows: list[tuple], *, source_id: int, override: bool, now: datetime, drop_unchanged: bool = True,
          all_new: bool = False, encoded: pgcopy.StoreBodies | None = None,
          staged: list[bytes] | None = None) -> Merged:
    """Merge deduplicated rows (in ``STAGE_COLUMNS`` order) from one source; call in a transaction.

    Two hints change the speed, never the result: ``drop_unchanged`` runs the read-only pass
    first (worth it when some rows may be unchanged); ``all_new`` first tries, on PostgreSQL,
    to COPY the batch straight in as new indicators (worth it on a first pull). ``encoded`` and
    ``staged``: the rows' COPY data (PostgreSQL) for that COPY and for the staging table, if the
    caller made it beforehand."""
    if not rows:
        return Merged(0, 0)
    dialect = _dialect()
    if all_new and dialect.vendor == "postgresql" and dialect.insert_new(rows, source_id, now, encoded):
        return Merged(created=len(rows), updated=0)
    params = {"source": source_id, "override": override, "now": now}
    if dialect.vendor == "sqlite":
        params["now"] = dialect.adapt(now)
    unchanged = 0
    with connection.cursor() as cursor:
        dialect.stage(cursor, rows, staged)
        if drop_unchanged:
            cursor.execute(dialect.unchanged_sql, params)
            unchanged = cursor.rowcount
        created, written = dialect.upsert_indicators(cursor, params)
        cursor.execute(dialect.sighting_sql, params)
        changed_sightings = written + cursor.rowcount
    return Merged(created=created, updated=max(changed_sightings - created, 0), unchanged=unchanged)
