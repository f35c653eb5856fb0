"""PostgreSQL: let each session draw store ids 1,000 at a time.

A first pull draws two ids per new indicator (the indicator's and its sighting's); served from
the session's cache, a nextval() costs a fraction of one that locks and logs the sequence
(benchmarks/ingest.py). Ids stay unique; they are no longer handed out in strict order across
sessions, and a session that ends leaves a gap. SQLite has no sequences: nothing to do there.
"""

from django.db import migrations

TABLES = ("exchange_indicator", "exchange_sighting")


def cache_ids(apps, schema_editor, cache: int = 1000) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"ALTER TABLE {table} ALTER COLUMN id SET CACHE {int(cache)}")


def uncache_ids(apps, schema_editor) -> None:
    cache_ids(apps, schema_editor, cache=1)


class Migration(migrations.Migration):
    dependencies = [("exchange", "0001_initial")]

    operations = [migrations.RunPython(cache_ids, uncache_ids, elidable=False)]
