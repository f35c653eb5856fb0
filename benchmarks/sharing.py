"""Sharing benchmark: rule selection, the pending delta and share runs on a store of N indicators.

One run, on a fresh database that the script creates and drops (PostgreSQL ``cte_bench_sharing`` by default):

1. fill: N synthetic indicators (the ingest benchmark's mix: hashes, URLs, domains, IPs) pulled through the
   real pipeline;
2. preview count: ``rules.preview`` counts by type of a rule with an exclusion (``type in (url, domain) and
   severity >= medium``, minus ``*.xyz``), against the same count written by hand in SQL; target <= 2x;
3. pending delta: a sharing configuration whose ledger already holds every other selected indicator as
   shared; the share run's selection of what is due (``exchange.selection.due``: rule, loop prevention,
   ledger anti-join) fetched in full, against a hand-written SQL anti-join of the same meaning; target <= 3x;
4. share runs: ``run_share`` of every URL to an external dynamic list (served by this app), then the list
   fetched as a firewall would; every MD5 to a webhook on a local HTTP server; shares/s, and the second
   run of each, which finds nothing due.

Each timed query runs three times after a warm-up; the median counts. The counts of both sides must agree.

    .venv/bin/python benchmarks/sharing.py [--n N] [--database-url URL] [--keep]
"""

import argparse
import json
import statistics
import sys
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest as ingest_bench  # the synthetic source and the database helpers

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cte_bench_sharing"
TARGET_PREVIEW, TARGET_DELTA = 2.0, 3.0
RULE = "type in (url, domain) and severity >= medium"
EXCLUSION = "*.xyz"


def timed(function, repeat: int = 3) -> tuple[float, object]:
    """Median seconds of ``repeat`` calls after one warm-up call, and the last result."""
    result = function()
    seconds = []
    for _ in range(repeat):
        began = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), result


def raw(sql: str, params: list) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


# -- phases ----------------------------------------------------------------------------------------------

def fill(n: int) -> dict:
    from django.core.management import call_command

    from exchange.models import PluginConfig
    from exchange.pull import run_pull

    call_command("migrate", verbosity=0, interactive=False)
    config = PluginConfig.objects.create(name="bench feed", connector=ingest_bench.Synthetic.key,
                                         settings={"n": n, "batch": 10_000})
    began = time.perf_counter()
    run = run_pull(config.pk, trigger="manual")
    return {"seconds": time.perf_counter() - began, "created": run.created, "source": config.pk}


def preview_count() -> dict:
    from django.db.models import Count

    from exchange import selection
    from rules.models import BusinessRule

    rule = BusinessRule.objects.create(name="bench web", expression=RULE, exclusions=EXCLUSION)

    def orm():
        selected = selection.selected(rule)
        return dict(selected.order_by("type").values_list("type").annotate(count=Count("pk")))

    def by_hand():
        rows = raw("SELECT type, COUNT(*) FROM exchange_indicator WHERE active = %s AND type IN ('url', 'domain') "
                   "AND severity IN ('medium', 'high', 'critical') AND NOT LOWER(value) LIKE %s GROUP BY type",
                   [True, "%.xyz"])
        return dict(rows)

    orm_seconds, orm_counts = timed(orm)
    sql_seconds, sql_counts = timed(by_hand)
    return {"orm": orm_seconds, "sql": sql_seconds, "counts": orm_counts, "agree": orm_counts == sql_counts,
            "rule": rule.pk}


def pending_delta(rule_id: int) -> dict:
    from django.utils import timezone

    from exchange import selection
    from exchange.models import Delivery, PluginConfig, SharingConfig
    from exchange.planner import analyze_after

    destination = PluginConfig.objects.create(name="bench firewalls", connector="edl")
    config = SharingConfig.objects.create(name="bench delta", rule_id=rule_id, destination=destination,
                                          action="publish", params={"slug": "delta", "url_format": "no_scheme"})
    # Half of the selection is in the ledger already, shared at its current version.
    raw("INSERT INTO exchange_delivery (config_id, indicator_id, type, value, status, attempts, last_error, "
        "version, shared_at, retractions, created, updated) "
        "SELECT %s, id, type, value, 'shared', 0, '', updated, updated, 0, updated, updated FROM exchange_indicator "
        "WHERE active = %s AND type IN ('url', 'domain') AND severity IN ('medium', 'high', 'critical') "
        "AND NOT LOWER(value) LIKE %s AND id %% 2 = 0", [config.pk, True, "%.xyz"])
    analyze_after(Delivery.objects.filter(config=config).count(), Delivery)  # as the share run that wrote them would
    now = timezone.now()

    def orm():
        return len(list(selection.due(config, now=now).values_list("pk", flat=True).iterator(chunk_size=10_000)))

    def by_hand():
        return len(raw(
            "SELECT i.id FROM exchange_indicator i WHERE i.active = %s AND i.type IN ('url', 'domain') "
            "AND i.severity IN ('medium', 'high', 'critical') AND NOT LOWER(i.value) LIKE %s "
            "AND NOT EXISTS (SELECT 1 FROM exchange_sighting s WHERE s.indicator_id = i.id AND s.source_id = %s) "
            "AND NOT EXISTS (SELECT 1 FROM exchange_delivery d WHERE d.config_id = %s AND d.indicator_id = i.id "
            "AND ((d.status = 'shared' AND d.version >= i.updated) "
            "OR (d.status = 'failed' AND (d.next_attempt > %s OR d.attempts >= %s))))",
            [True, "%.xyz", destination.pk, config.pk, now, 5]))

    orm_seconds, orm_rows = timed(orm)
    sql_seconds, sql_rows = timed(by_hand)
    return {"orm": orm_seconds, "sql": sql_seconds, "rows": orm_rows, "agree": orm_rows == sql_rows}


def share_to_edl() -> dict:
    from django.test import Client

    from exchange.models import PluginConfig, SharingConfig
    from exchange.sharing import run_share
    from rules.models import BusinessRule

    rule = BusinessRule.objects.create(name="bench urls", expression="type = url")
    destination = PluginConfig.objects.get(name="bench firewalls")
    config = SharingConfig(name="bench edl", rule=rule, destination=destination, action="publish",
                           params={"slug": "urls", "url_format": "no_scheme"})
    config.set_secrets({"token": "bench-token-0123456789"})
    config.save()
    first, second = _two_runs(run_share, config.pk)
    began = time.perf_counter()
    response = Client().get("/feeds/edl/urls.txt", headers={"Authorization": "Bearer bench-token-0123456789"},
                            HTTP_HOST="localhost")
    lines = sum(chunk.count(b"\n") for chunk in response.streaming_content)
    return {**first, "again": second, "fetch": time.perf_counter() - began, "lines": lines}


def share_to_webhook() -> dict:
    from exchange.models import PluginConfig, SharingConfig
    from exchange.sharing import run_share
    from rules.models import BusinessRule

    received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _receiver(received))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rule = BusinessRule.objects.create(name="bench md5", expression="type = md5")
        url = f"http://127.0.0.1:{server.server_port}/hook"
        destination = PluginConfig.objects.create(name="bench webhook", connector="webhook",
                                                  settings={"url": url, "batch_size": 1000})
        config = SharingConfig.objects.create(name="bench webhook", rule=rule, destination=destination,
                                              action="send", params={})
        first, second = _two_runs(run_share, config.pk)
    finally:
        server.shutdown()
    return {**first, "again": second, "received": sum(received), "requests": len(received)}


def _two_runs(run_share, config_id: int) -> tuple[dict, float]:
    began = time.perf_counter()
    run = run_share(config_id, trigger="manual")
    seconds = time.perf_counter() - began
    began = time.perf_counter()
    again = run_share(config_id, trigger="manual")
    return ({"seconds": seconds, "shared": run.shared, "failed": run.failed, "error": run.error or again.error},
            time.perf_counter() - began)


def _receiver(received: list):
    class Receiver(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(len(json.loads(body).get("indicators", [])))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    return Receiver


# -- report ----------------------------------------------------------------------------------------------

def report(n: int, vendor: str, results: dict) -> bool:
    filled, preview, delta, edl, hook = (results[key] for key in ("fill", "preview", "delta", "edl", "webhook"))
    print(f"fill: {filled['created']:,} indicators through the pull pipeline in {filled['seconds']:.1f} s")
    ok = True
    for label, phase, target, size in (("preview count", preview, TARGET_PREVIEW, sum(preview["counts"].values())),
                                       ("pending delta", delta, TARGET_DELTA, delta["rows"])):
        ratio = phase["orm"] / phase["sql"]
        print(f"{label}: {size:,} rows; CTE {phase['orm'] * 1000:.0f} ms, hand-written SQL {phase['sql'] * 1000:.0f} "
              f"ms, ratio {ratio:.2f} (target <= {target}); results agree: {phase['agree']}")
        ok = ok and phase["agree"] and (vendor != "postgresql" or ratio <= target)
    for label, phase in (("EDL", edl), ("webhook", hook)):
        rate = phase["shared"] / phase["seconds"] if phase["seconds"] else 0
        print(f"share to {label}: {phase['shared']:,} shared in {phase['seconds']:.1f} s = {rate:,.0f} shares/s; "
              f"second run (nothing due) {phase['again']:.1f} s; failed {phase['failed']}"
              + (f"; error: {phase['error']}" if phase["error"] else ""))
        ok = ok and not phase["error"] and not phase["failed"]
    print(f"EDL fetch: {edl['lines']:,} lines in {edl['fetch']:.1f} s = {edl['lines'] / edl['fetch']:,.0f} lines/s")
    print(f"webhook: {hook['received']:,} indicators received in {hook['requests']:,} requests")
    ok = ok and edl["lines"] == edl["shared"] and hook["received"] >= hook["shared"]
    if vendor != "postgresql":
        print(f"targets: not judged on {vendor} (they are for PostgreSQL)")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="indicators in the store (default 1,000,000)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"default {DEFAULT_URL}")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="No directory at")  # whitenoise: no collected static files
    ingest_bench.configure(args.database_url)
    from django.db import connection

    ingest_bench.create_database()
    try:
        print(f"CTE sharing benchmark: N={args.n:,}, {connection.vendor} {connection.settings_dict['NAME']}")
        results = {"fill": fill(args.n)}
        results["preview"] = preview_count()
        results["delta"] = pending_delta(results["preview"]["rule"])
        results["edl"] = share_to_edl()
        results["webhook"] = share_to_webhook()
        return 0 if report(args.n, connection.vendor, results) else 1
    finally:
        if not args.keep:
            ingest_bench.drop_database()


if __name__ == "__main__":
    sys.exit(main())
