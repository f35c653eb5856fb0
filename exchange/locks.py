"""Run exclusion: at most one run per configuration at a time, across processes and machines.

PostgreSQL: a session-level advisory lock. SQLite (one machine by nature): ``flock`` on a lock
file. Both are released by the operating system or the server when the holder dies, so a
killed run never leaves a lock behind and the next run can tell it was interrupted.
"""

import fcntl
import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection


def _key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextmanager
def exclusive(name: str) -> Iterator[bool]:
    """Yield True while holding the lock ``name``, False (at once) if another process holds it."""
    if connection.vendor == "postgresql":
        with _advisory(name) as acquired:
            yield acquired
    else:
        with _file_lock(name) as acquired:
            yield acquired


@contextmanager
def _advisory(name: str) -> Iterator[bool]:
    key = _key(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired and connection.connection is not None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


@contextmanager
def _file_lock(name: str) -> Iterator[bool]:
    # Several databases (test runs) may share the lock folder: the database is part of the name.
    database = hashlib.blake2b(str(connection.settings_dict["NAME"]).encode(), digest_size=6).hexdigest()
    folder = settings.CTE_LOCK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{database}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.lock"
    descriptor = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
