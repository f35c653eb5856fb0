"""Keep the query planner's statistics current after bulk writes.

PostgreSQL's autovacuum analyzes a table once a tenth of it has changed, in its own time. Until
then a pull that has just created 100,000 indicators, or a share run that has just written as
many deliveries, leaves the planner believing those tables nearly empty, and the next share
run's anti-join against the ledger is planned as a nested loop over every pair of rows: seconds
on a small store, hours on a large one. ANALYZE samples at most a few tens of thousands of rows
whatever the table's size, so it costs a fraction of a second.
"""

from django.db import connection

#: Rows written by one run above which its tables are analyzed at its end.
THRESHOLD = 10_000


def analyze_after(written: int, *models) -> bool:
    """ANALYZE the tables of ``models`` when a run wrote ``written`` >= THRESHOLD rows to them."""
    if written < THRESHOLD:
        return False
    with connection.cursor() as cursor:
        for model in models:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
    return True
