"""TAXII pull benchmark: N indicators pulled by the STIX/TAXII connector from a TAXII 2.1 server over HTTP.

The server is this app's own TAXII 2.1 server, run by gunicorn on a local port on a source database
(``cte_bench_taxii_src``) that holds N synthetic indicators (the ingest benchmark's mix) published by a
sharing configuration to a collection. The pull runs in a fresh database (``cte_bench_taxii``) through
``exchange.pull.run_pull``, exactly as a scheduled pull: taxii2-client pages, STIX patterns parsed with
stix2-patterns, records normalized and merged through the same fast path as every pull. Both databases are
created and dropped by the script.

Prints: the pull's objects/s (objects received over the pull's wall time), its counters (every indicator
must be created once, none rejected), the pages read, and the pulling process's peak RSS.

    .venv/bin/python benchmarks/taxii.py [--n N] [--page P] [--database-url URL] [--keep]
"""

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(HERE))

import ingest as ingest_bench  # noqa: E402  (the synthetic source, the database helpers, the forked phases)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cte_bench_taxii"
TOKEN = "bench-taxii-token-0123456789"
SLUG = "bench"


# -- the source side: a store published as a collection, served by gunicorn ------------------------------

def prepare_source(n: int) -> None:
    """In the source database: N synthetic indicators, published to a TAXII collection."""
    from django.core.management import call_command

    from exchange.models import PluginConfig, SharingConfig
    from exchange.pull import run_pull
    from exchange.sharing import run_share
    from rules.models import BusinessRule

    call_command("migrate", verbosity=0, interactive=False)
    feed = PluginConfig.objects.create(name="bench feed", connector=ingest_bench.Synthetic.key,
                                       settings={"n": n, "batch": 10_000})
    run_pull(feed.pk, trigger="manual")
    destination = PluginConfig.objects.create(name="bench collections", connector="taxii_server")
    share = SharingConfig(name="bench collection", rule=BusinessRule.objects.create(name="everything"),
                          destination=destination, action="publish", params={"slug": SLUG, "title": "bench"})
    share.set_secrets({"token": TOKEN})
    share.full_clean()
    share.save()
    run = run_share(share.pk, trigger="manual")
    print(f"source: {run.shared:,} indicators published to the collection", flush=True)


def serve(database_url: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": database_url, "DEBUG": "true", "CTE_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "cteproject.wsgi", "--bind", f"127.0.0.1:{port}",
                               "--workers", "1", "--log-level", "warning"], cwd=PROJECT, env=env)
    root = f"http://127.0.0.1:{port}/taxii2/cte/"
    for _ in range(100):
        try:
            if requests.get(root, timeout=1).status_code == 200:
                return server, root
        except requests.ConnectionError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the TAXII server did not start")


# -- the pulling side ------------------------------------------------------------------------------------

def setup(root: str, page: int) -> dict:
    from django.core.management import call_command

    from exchange.models import PluginConfig

    call_command("migrate", verbosity=0, interactive=False)
    config = PluginConfig(name="bench taxii", connector="taxii", initial_range=3650,
                          settings={"url": root, "version": "2.1", "auth": "bearer", "collections": "",
                                    "page_size": page, "lookback": 0})
    config.set_secrets({"token": TOKEN})
    config.save()
    return {"config": config.pk}


def pull(config_id: int) -> dict:
    from exchange.models import PluginConfig
    from exchange.pull import run_pull

    began = time.perf_counter()
    run = run_pull(config_id, trigger="manual")
    seconds = time.perf_counter() - began
    storage = PluginConfig.objects.get(pk=config_id).storage
    counters = {name: getattr(run, name) for name in ("received", "created", "updated", "unchanged", "rejected")}
    return {"seconds": seconds, "error": run.error, "counters": counters, "batches": run.batches,
            "storage": storage}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="indicators (default 100,000)")
    parser.add_argument("--page", type=int, default=1000, help="objects per TAXII request (default 1,000)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"the pulling side's; default {DEFAULT_URL}")
    parser.add_argument("--prepare-source", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="keep both databases afterwards")
    args = parser.parse_args()
    source_url = args.database_url + "_src"
    if args.prepare_source:
        ingest_bench.configure(args.database_url)
        ingest_bench.create_database()
        prepare_source(args.n)
        return 0

    began = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--prepare-source", "--n", str(args.n), "--database-url", source_url],
                   check=True)
    print(f"source prepared in {time.perf_counter() - began:.1f} s", flush=True)
    server, root = serve(source_url)
    ingest_bench.configure(args.database_url)
    from django.db import connection

    ingest_bench.create_database()
    try:
        config = ingest_bench.in_child(setup, root, args.page)["config"]
        print(f"CTE TAXII pull benchmark: N={args.n:,}, page {args.page:,}, from {root} into "
              f"{connection.vendor} {connection.settings_dict['NAME']}")
        phase = ingest_bench.in_child(pull, config)
        return report(args.n, phase)
    finally:
        server.terminate()
        server.wait(timeout=30)
        if not args.keep:
            ingest_bench.drop_database()
            connection.settings_dict["NAME"] = source_url.rsplit("/", 1)[1]
            ingest_bench.drop_database()


def report(n: int, phase: dict) -> int:
    counts = phase["counters"]
    rate = counts["received"] / phase["seconds"] if phase["seconds"] else 0
    client, server = phase["cpu"]
    print(f"pull: {counts['received']:,} objects in {phase['seconds']:.1f} s = {rate:,.0f} objects/s; "
          f"{phase['batches']} batches; peak RSS {phase['rss']:.0f} MB; client CPU {client:.1f} s"
          + (f", database CPU {server:.1f} s" if server is not None else ""))
    print("counters: " + ", ".join(f"{key} {value:,}" for key, value in counts.items()))
    correct = not phase["error"] and counts["received"] == n and counts["created"] == n and not counts["rejected"]
    print(f"check: every object received and created once, none rejected: {'OK' if correct else 'WRONG'}"
          + (f" ({phase['error']})" if phase["error"] else ""))
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
