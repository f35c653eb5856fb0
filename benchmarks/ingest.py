"""Ingest benchmark: N synthetic indicators through the real pull pipeline, measured against a raw COPY.

One run, on one fresh database that the script creates and drops (PostgreSQL ``cte_bench`` by default):

1. raw COPY: the N rows, already normalized, binary-COPYed (SQLite: executemany) into a bare table with
   one unique index on (type, value), a commit per batch: the floor the pipeline is measured against;
   then, on PostgreSQL, "2-table COPY": the same rows binary-COPYed into two bare tables shaped like
   Indicator and Sighting, with their indexes: what writing this schema costs the server before any
   normalization or merge logic (compare its server CPU; its client, the driver's row-by-row encoding in
   one thread, overlaps nothing, so its time is no ceiling for a pipeline that does);
2. first pull: ``exchange.pull.run_pull`` of a synthetic connector sending N records (35% sha256, 10% md5,
   5% sha1, 25% URLs, 15% domains, 8% IPv4, 2% IPv6; some upper case, defanged or with a default port):
   normalize + merge + Indicator + Sighting, exactly as a scheduled pull runs;
3. re-pull: the same N records again, which must all come out unchanged.

Each phase runs in a forked child of a process that has only loaded Django, so a phase's peak RSS
(``ru_maxrss``) is that of a worker running that phase alone.

Reading the output: rows/s per phase; ratio = pipeline rows/s / raw COPY rows/s (1.0 would be as fast as
the bare COPY); the counters check correctness (first pull: created = N - rejected; re-pull: unchanged = N);
the stage line splits a pull's seconds into record generation (source), normalize (prepare), the COPY data
encoded ahead of the merge (encode), the COPY of new indicators, staging COPY, indicator upsert, sighting upsert,
commit and the rest (run counters, rejected records, cursor save, the statistics refreshed at the end).
Targets, on PostgreSQL only: ratio >= 0.5 for both pulls, peak RSS <= 400 MB. ``--profile`` runs the first pull
alone under cProfile (N defaults to 200,000 there) and prints the top functions of the thread writing to the
database (not the read-ahead's); its times include the profiler's overhead, which inflates Python against SQL. On
PostgreSQL, each phase starts with a CHECKPOINT (when the role may run one), so that it pays for its own WAL, not
for the previous phases'; WAL and checkpoints are the server's during each phase (other databases' work would show
too); client CPU is the benchmark process's, server CPU its PostgreSQL backend's (read from /proc, so only for a
server on this machine).

    .venv/bin/python benchmarks/ingest.py [--n N] [--batch B] [--database-url URL] [--keep] [--profile]
"""

import argparse
import cProfile
import hashlib
import multiprocessing
import os
import pstats
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.base import Batch, Connector, Record
from connectors.registry import register

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cte_bench"
RAW_TABLE = "bench_raw"
TARGET_RATIO, TARGET_RSS_MB = 0.5, 400
# Fixed for the whole run, so that the re-pull sends identical records.
LAST_SEEN = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
FIRST_SEEN = LAST_SEEN - timedelta(days=30)
EXPIRES = LAST_SEEN + timedelta(days=90)  # the configuration's default aging
SEVERITIES = ("high", "medium", "low", "critical", "Info")
CLEAN_SEVERITIES = ("high", "medium", "low", "critical", "low")  # what the ingest makes of them
TLDS = ("com", "net", "org", "ru", "xyz")
STAGES: dict[str, float] = {}  # seconds per pipeline stage, in the process running the pull
# The staging rows carry tags as JSON text, as the ingest stages them.
TAGS_JSON = {kind: f'["bench", "{kind}"]' for kind in ("url", "domain", "ipv4", "ipv6", "md5", "sha1", "sha256")}


# -- synthetic indicators -----------------------------------------------------------------------------------

def synthetic(start: int, stop: int) -> Iterator[tuple[int, str, str, str]]:
    """``(i, type, value as the source sends it, canonical value)`` of indicators ``start`` to
    ``stop - 1``: unique, deterministic. Indicator ``i`` is of type ``i % 100`` (the buckets below)
    and variant ``i // 100 % 4`` (how it is written); its random digits are its 64 of the
    SHAKE-256 stream of its block of 100 (one hash call per block rather than per indicator)."""
    for block in range(start // 100, (stop + 99) // 100):
        digits = _shake(block.to_bytes(8, "little")).hexdigest(3200)
        variant, first = block % 4, block * 100
        for i in range(max(start, first), min(stop, first + 100)):
            bucket = i - first
            digest = digits[bucket * 64:bucket * 64 + 64]
            if bucket < 50:
                kind, digest = ("sha256", digest) if bucket < 35 else ("md5", digest[:32]) if bucket < 45 else \
                    ("sha1", digest[:40])
                yield i, kind, digest.upper() if variant == 0 else digest, digest
            elif bucket < 75:
                yield i, *_url(digest, variant)
            elif bucket < 90:
                yield i, *_domain(digest, variant)
            elif bucket < 98:
                yield i, *_ipv4(i, variant)
            else:
                yield i, *_ipv6(digest, variant)


_shake = hashlib.shake_256


def _url(digest: str, variant: int) -> tuple[str, str, str]:
    scheme = "https" if int(digest[-1], 16) % 2 else "http"
    host, path = f"www.{digest[:12]}.{TLDS[int(digest[12], 16) % 5]}", f"/{digest[13:21]}/index.php?id={digest[21:25]}"
    canonical = f"{scheme}://{host}{path}"
    if variant == 0:
        return "url", f"{scheme}://{host.upper()}{path}", canonical
    if variant == 1:
        return "url", f"{scheme}://{host}:{443 if scheme == 'https' else 80}{path}", canonical
    if variant == 2:
        return "url", f"hxxp{scheme[4:]}://{host.replace('.', '[.]')}{path}", canonical
    return "url", canonical, canonical


def _domain(digest: str, variant: int) -> tuple[str, str, str]:
    name = f"{digest[:10]}.{digest[10:16]}.{TLDS[int(digest[16], 16) % 5]}"
    if variant == 3:
        return "domain", name, name
    return "domain", name.upper() if variant == 0 else name + "." if variant == 1 else name.replace(".", "[.]"), name


def _ipv4(i: int, variant: int) -> tuple[str, str, str]:
    number = i * 2654435761 % 2**32  # an odd multiplier: one address per index
    address = f"{number >> 24}.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"
    return "ipv4", address.replace(".", "[.]", 1) if variant == 0 else address, address


def _ipv6(digest: str, variant: int) -> tuple[str, str, str]:
    groups = ":".join([f"{int(digest[k:k + 3], 16) | 0x1000:x}" for k in range(0, 18, 3)])  # no zero group
    address = "2001:db8:" + groups
    if variant == 3:
        return "ipv6", address, address
    sent = address.upper() if variant == 0 else "2001:0db8:" + groups if variant == 1 else f"[{address}]"
    return "ipv6", sent, address


# One tag list per type, handed to each of its records, as a feed hands its configured tags (connectors/webfeed.py).
TAGS = {kind: ["bench", kind] for kind in TAGS_JSON}


def records(start: int, stop: int) -> list[Record]:
    return [Record(value, type_, first_seen=FIRST_SEEN, last_seen=LAST_SEEN, severity=SEVERITIES[i % 5],
                   tags=TAGS[type_], external_id=f"bench-{i}") for i, type_, value, _ in synthetic(start, stop)]


def raw_rows(start: int, stop: int) -> Iterator[tuple]:
    """The staging rows the ingest makes of ``records(start, stop)``, in ``exchange.merge.STAGE_COLUMNS`` order."""
    for i, type_, _, value in synthetic(start, stop):
        yield (type_, value, FIRST_SEEN, LAST_SEEN, EXPIRES, 5, CLEAN_SEVERITIES[i % 5], TAGS_JSON[type_], "",
               f"bench-{i}", 1)


@register
class Synthetic(Connector):
    """Sends ``settings["n"]`` synthetic records in batches of ``settings["batch"]``; the cursor is the next index."""

    key = "bench-synthetic"
    label = "Benchmark synthetic source"

    def validate(self, ctx) -> str:
        return f"{ctx.settings['n']} synthetic records"

    def pull(self, ctx) -> Iterator[Batch]:
        n, size = ctx.settings["n"], ctx.settings["batch"]
        for start in range(ctx.cursor or 0, n, size):
            began = time.perf_counter()
            batch = records(start, min(start + size, n))
            STAGES["source"] = STAGES.get("source", 0.0) + time.perf_counter() - began
            yield Batch(batch, cursor=start + len(batch))


def check_generator(count: int = 5000) -> None:
    """Fail early unless the baseline's rows are exactly what the ingest makes of the records."""
    from exchange.ingest import prepare
    from exchange.models import PluginConfig

    rows, rejections = prepare(PluginConfig(), records(0, count), LAST_SEEN + timedelta(hours=1))
    assert not rejections, rejections[:3]
    expected = sorted(raw_rows(0, count), key=lambda row: row[1])  # the ingest's order
    assert rows == expected, "the baseline rows differ from the ingest's"


# -- database and processes ---------------------------------------------------------------------------------

def configure(url: str) -> None:
    os.environ.update(DJANGO_SETTINGS_MODULE="cteproject.settings", DEBUG="true", DATABASE_URL=url,
                      CTE_DATA_DIR=str(Path(tempfile.gettempdir()) / "cte_bench_data"))  # SQLite's run locks
    os.environ.setdefault("CTE_LOG_LEVEL", "WARNING")
    import django
    from django.conf import settings

    django.setup()
    settings.DEBUG = False  # DEBUG only spared the SECRET_KEY: do not log queries, as in production


def create_database() -> None:
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "postgresql":
        if not db["NAME"].startswith("cte_bench"):
            raise SystemExit(f"refusing to recreate {db['NAME']!r}: the benchmark's databases are named cte_bench*")
        _pg_admin(f'DROP DATABASE IF EXISTS "{db["NAME"]}" WITH (FORCE)', f'CREATE DATABASE "{db["NAME"]}"')
    elif Path(db["NAME"]).exists():
        raise SystemExit(f"{db['NAME']} exists: remove it or name another file")


def drop_database() -> None:
    from django.conf import settings
    from django.db import connection, connections

    connections.close_all()
    if connection.vendor == "postgresql":
        _pg_admin(f'DROP DATABASE IF EXISTS "{connection.settings_dict["NAME"]}" WITH (FORCE)')
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(connection.settings_dict["NAME"] + suffix).unlink(missing_ok=True)
        shutil.rmtree(settings.DATA_DIR, ignore_errors=True)  # the run locks' folder


def _pg_admin(*statements: str) -> None:
    import psycopg
    from django.db import connection

    db = connection.settings_dict
    with psycopg.connect(dbname="postgres", host=db["HOST"], port=db["PORT"] or None, user=db["USER"],
                         password=db["PASSWORD"] or None, autocommit=True) as admin:
        for statement in statements:
            admin.execute(statement)


def in_child(phase: Callable[..., dict], *args) -> dict:
    """Run ``phase(*args)`` in a forked child; its result, plus the child's peak RSS in MB as ``rss``."""
    from django.db import connections

    connections.close_all()  # a forked child must open its own connection
    sys.stdout.flush()
    with multiprocessing.get_context("fork").Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(_measured, (phase, *args))


def _measured(phase: Callable[..., dict], *args) -> dict:
    from django.db import connections

    try:
        _checkpoint()
        before = _server_writes()
        server_before, client_before = _server_cpu(), _client_cpu()
        result = phase(*args)
        server_cpu, client_cpu = _server_cpu(), _client_cpu() - client_before
        after = _server_writes()
    finally:
        connections.close_all()
        sys.stdout.flush()
    writes = tuple(b - a for a, b in zip(before, after, strict=True)) if before else None
    cpu = (client_cpu, server_cpu - server_before if server_cpu is not None and server_before is not None else None)
    return {**result, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "writes": writes, "cpu": cpu}


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _server_cpu() -> float | None:
    """CPU seconds of this connection's PostgreSQL backend, when the server runs on this machine."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _checkpoint() -> None:
    """Start the phase on a fresh checkpoint, so that it pays for its own WAL (and the full-page
    images after a checkpoint it triggers), not for what the phases before it wrote."""
    from django.db import DatabaseError, connection

    if connection.vendor == "postgresql":
        try:
            with connection.cursor() as cursor:
                cursor.execute("CHECKPOINT")
        except DatabaseError:  # not a superuser (nor pg_checkpoint): the phases share the server's rhythm
            pass


def _server_writes() -> tuple[float, int] | None:
    """PostgreSQL's WAL position (MB) and checkpoint count: server-wide, so other databases' work shows too."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT (pg_current_wal_lsn() - '0/0') / 1048576.0, checkpoints_timed + checkpoints_req "
                       "FROM pg_stat_bgwriter")
        wal, checkpoints = cursor.fetchone()
    return float(wal), checkpoints


# -- phases -------------------------------------------------------------------------------------------------

def setup(n: int, batch: int) -> dict:
    from django.core.management import call_command
    from django.db import connection

    from exchange.models import PluginConfig

    call_command("migrate", verbosity=0, interactive=False)
    ts = "timestamptz" if connection.vendor == "postgresql" else "text"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {RAW_TABLE} (type varchar(10), value varchar(2048), first_seen {ts}, last_seen {ts}, "
            f"expires_at {ts}, reputation smallint, severity varchar(10), tags text, comments text, "
            "external_id varchar(255), hits integer)"
        )
        cursor.execute(f"CREATE UNIQUE INDEX {RAW_TABLE}_type_value ON {RAW_TABLE} (type, value)")
    config = PluginConfig.objects.create(name="benchmark", connector=Synthetic.key, settings={"n": n, "batch": batch})
    return {"config": config.pk}


def two_table_copy(n: int, batch: int) -> dict:
    """The same rows binary-COPYed into two bare tables shaped like Indicator and Sighting, with their
    indexes, ids counted client-side: no normalization, no merge. Its server CPU is what writing this
    schema costs the server (PostgreSQL only)."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        for name, model in (("bench_indicator", "exchange_indicator"), ("bench_sighting", "exchange_sighting")):
            cursor.execute(f"CREATE TABLE {name} (LIKE {model} INCLUDING DEFAULTS INCLUDING INDEXES)")
    now = datetime.now(UTC)
    started = time.perf_counter()
    for start in range(0, n, batch):
        with transaction.atomic(), connection.cursor() as cursor:
            rows = list(enumerate(raw_rows(start, min(start + batch, n)), start + 1))
            _copy_into(cursor.cursor, "bench_indicator", INDICATOR_COPY, (
                (id_, t, v, first, last, exp, True, rep, sev, tags, com, 1, now, now)
                for id_, (t, v, first, last, exp, rep, sev, tags, com, _, _) in rows))
            _copy_into(cursor.cursor, "bench_sighting", SIGHTING_COPY, (
                (id_, 1, first, last, exp, rep, sev, tags, com, ext, hits, now, now)
                for id_, (_, _, first, last, exp, rep, sev, tags, com, ext, hits) in rows))
    return {"seconds": time.perf_counter() - started}


INDICATOR_COPY = (("id", "type", "value", "first_seen", "last_seen", "expires_at", "active", "reputation", "severity",
                   "tags", "comments", "source_id", "created", "updated"),
                  ("int8", "varchar", "varchar", "timestamptz", "timestamptz", "timestamptz", "bool", "int2",
                   "varchar", "jsonb", "text", "int8", "timestamptz", "timestamptz"))
SIGHTING_COPY = (("indicator_id", "source_id", "first_seen", "last_seen", "expires_at", "reputation",
                  "severity", "tags", "comments", "external_id", "hits", "created", "updated"),
                 ("int8", "int8", "timestamptz", "timestamptz", "timestamptz", "int2", "varchar", "jsonb",
                  "text", "varchar", "int4", "timestamptz", "timestamptz"))


def _copy_into(cursor, table: str, shape: tuple, rows) -> None:
    from psycopg.types.json import Jsonb

    columns, types = shape
    tags_at = columns.index("tags")
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row((*row[:tags_at], Jsonb(row[tags_at], dumps=str), *row[tags_at + 1:]))


def raw_copy(n: int, batch: int) -> dict:
    from django.db import connection, transaction

    load = _copy_rows if connection.vendor == "postgresql" else _insert_rows
    started = time.perf_counter()
    for start in range(0, n, batch):
        with transaction.atomic(), connection.cursor() as cursor:
            load(cursor.cursor, range(start, min(start + batch, n)))
    return {"seconds": time.perf_counter() - started}


def _copy_rows(cursor, indexes: range) -> None:
    with cursor.copy(f"COPY {RAW_TABLE} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(("varchar", "varchar", "timestamptz", "timestamptz", "timestamptz", "int2", "varchar",
                        "text", "text", "varchar", "int4"))
        for row in raw_rows(indexes.start, indexes.stop):
            copy.write_row(row)


def _insert_rows(cursor, indexes: range) -> None:
    from django.db import connection

    first, last, expires = (connection.ops.adapt_datetimefield_value(moment) for moment in (FIRST_SEEN, LAST_SEEN,
                                                                                          EXPIRES))
    rows = raw_rows(indexes.start, indexes.stop)
    cursor.executemany(
        f"INSERT INTO {RAW_TABLE} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        ((t, v, first, last, expires, r, s, tags, c, x, h) for t, v, _, _, _, r, s, tags, c, x, h in rows),
    )


def pull(config_id: int) -> dict:
    from exchange.pull import run_pull

    _time_stages()
    started = time.perf_counter()
    run = run_pull(config_id, trigger="manual")
    seconds = time.perf_counter() - started
    counters = {name: getattr(run, name) for name in ("received", "created", "updated", "unchanged", "rejected")}
    return {"seconds": seconds, "error": run.error, "counters": counters, "stages": _stage_seconds(seconds)}


def profiled_pull(config_id: int) -> dict:
    profiler = cProfile.Profile()
    result = profiler.runcall(pull, config_id)
    for order in ("cumulative", "tottime"):
        print(f"\n-- top 25 by {order} time --")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats(order).print_stats(25)
    return result


def _time_stages() -> None:
    """Wrap the pipeline's stages with timers, in this process only: the project is not edited."""
    from django.db import connections

    from exchange import ingest, merge, pull

    wrapper = type(connections["default"])
    wrapper.commit = _timed(wrapper.commit, "commit")
    dialect = type(merge._dialect())
    ingest.prepare = _timed(ingest.prepare, "prepare")
    pull.prepare_batch = _timed(pull.prepare_batch, "prepare batch")
    ingest.merge = _timed(ingest.merge, "merge")
    merge._Dialect.stage = _timed(merge._Dialect.stage, "staging COPY")
    dialect.upsert_indicators = _timed(dialect.upsert_indicators, "indicator upsert")
    if hasattr(dialect, "insert_new"):
        dialect.insert_new = _timed(dialect.insert_new, "COPY new")


def _timed(function: Callable, stage: str) -> Callable:
    @wraps(function)
    def timed(*args, **kwargs):
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            STAGES[stage] = STAGES.get(stage, 0.0) + time.perf_counter() - began

    return timed


def _stage_seconds(total: float) -> dict[str, float]:
    """Seconds per stage. The source, prepare and encode run in the pull's read-ahead thread, overlapping
    the merge in the main thread; "waiting" is the main thread's time outside merge and commit."""
    get = STAGES.get
    merge, copy_new, staging, upsert = (get(name, 0.0) for name in ("merge", "COPY new", "staging COPY",
                                                                     "indicator upsert"))
    return {
        "source*": get("source", 0.0), "prepare*": get("prepare", 0.0),
        "encode*": get("prepare batch", 0.0) - get("prepare", 0.0), "COPY new": copy_new,
        "staging COPY": staging, "indicator upsert": upsert,
        # merge() runs the unchanged pass and the sighting upsert inline: the rest of merge().
        "unchanged pass + sighting upsert": merge - copy_new - staging - upsert,
        "commit": get("commit", 0.0), "waiting": total - merge - get("commit", 0.0),
    }


# -- report -------------------------------------------------------------------------------------------------

def report(n: int, vendor: str, phases: dict[str, dict]) -> bool:
    raw_rate = n / phases["raw COPY"]["seconds"]
    print(f"{'phase':<14}{'seconds':>10}{'rows/s':>12}{'ratio':>8}{'peak RSS':>11}{'client CPU':>12}"
          f"{'server CPU':>12}{'WAL':>10}{'checkpoints':>13}")
    for name, phase in phases.items():
        rate = n / phase["seconds"]
        phase["ratio"] = rate / raw_rate
        client, server = phase["cpu"]
        cpu = f"{client:>10.1f} s" + (f"{server:>10.1f} s" if server is not None else f"{'':>12}")
        writes = f"{phase['writes'][0]:>7,.0f} MB{phase['writes'][1]:>13}" if phase["writes"] else ""
        print(f"{name:<14}{phase['seconds']:>10.1f}{rate:>12,.0f}{phase['ratio']:>8.2f}{phase['rss']:>8.0f} MB{cpu}"
              f"{writes}")
    if "2-table COPY" in phases:
        reference = phases["2-table COPY"]["seconds"]
        print("against the 2-table COPY (the same rows into Indicator- and Sighting-shaped tables, no "
              "normalization, no merge): " + ", ".join(f"{name} {reference / phases[name]['seconds']:.2f}"
                                                         for name in ("first pull", "re-pull")))
    correct = _check_counters(n, phases["first pull"], phases["re-pull"])
    rss = max(phase["rss"] for phase in phases.values())
    print(f"peak RSS (max of the phases): {rss:.0f} MB   (* in the read-ahead thread, overlapping the rest)")
    if vendor != "postgresql":
        print(f"targets: not judged on {vendor} (they are for PostgreSQL)")
        return correct
    verdicts = [_verdict(f"{name} ratio", phases[name]["ratio"], ">=", TARGET_RATIO)
                for name in ("first pull", "re-pull")] + [_verdict("peak RSS MB", rss, "<=", TARGET_RSS_MB)]
    return correct and all(verdicts)


def _check_counters(n: int, first: dict, again: dict) -> bool:
    ok = True
    for name, phase, expected in (("first pull", first, "created"), ("re-pull", again, "unchanged")):
        counts = phase["counters"]
        good = not phase["error"] and counts["received"] == n and counts[expected] == n - counts["rejected"]
        ok = ok and good
        verdict = f"OK ({expected} = N - rejected)" if good else f"WRONG ({expected} != N - rejected) {phase['error']}"
        print(f"{name}: " + ", ".join(f"{key} {value:,}" for key, value in counts.items()) + f" -> {verdict}")
        print("  stages (s): " + ", ".join(f"{key} {value:.1f}" for key, value in phase["stages"].items()))
    return ok


def _verdict(label: str, value: float, op: str, target: float) -> bool:
    passed = value >= target if op == ">=" else value <= target
    print(f"target {label} {value:.2f} {op} {target}: {'PASS' if passed else 'FAIL'}")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, help="indicators (default 1,000,000; 200,000 with --profile)")
    parser.add_argument("--batch", type=int, default=10_000, help="records per batch (default 10,000)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"default {DEFAULT_URL}")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--profile", action="store_true", help="profile the first pull only")
    args = parser.parse_args()
    n = args.n or (200_000 if args.profile else 1_000_000)
    configure(args.database_url)
    from django.db import connection

    check_generator()
    create_database()
    try:
        config = in_child(setup, n, args.batch)["config"]
        database = f"{connection.vendor} {connection.settings_dict['NAME']}"
        print(f"CTE ingest benchmark: N={n:,}, batch={args.batch:,}, {database}")
        if args.profile:
            phase = in_child(profiled_pull, config)
            print(f"\nfirst pull under cProfile: {phase['seconds']:.1f} s, peak RSS {phase['rss']:.0f} MB; stages (s): "
                  + ", ".join(f"{key} {value:.1f}" for key, value in phase["stages"].items()))
            return 0
        phases = {"raw COPY": in_child(raw_copy, n, args.batch)}
        if connection.vendor == "postgresql":
            phases["2-table COPY"] = in_child(two_table_copy, n, args.batch)
        phases["first pull"] = in_child(pull, config)
        phases["re-pull"] = in_child(pull, config)
        return 0 if report(n, connection.vendor, phases) else 1
    finally:
        if not args.keep:
            drop_database()


if __name__ == "__main__":
    sys.exit(main())
