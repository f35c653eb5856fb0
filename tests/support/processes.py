"""A pull in a second process, on the test database, killed with SIGKILL at a chosen moment."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection


def subprocess_env() -> dict:
    """The environment for a second process that must use this test database."""
    database = connection.settings_dict
    env = dict(os.environ)
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{database['NAME']}"
    else:
        env["DATABASE_URL"] = (
            f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/"
            f"{database['NAME']}"
        )
    env["CTE_CONNECTORS"] = ",".join([*settings.CTE_CONNECTORS, "tests.support.connectors"])
    env["CTE_DATA_DIR"] = str(settings.DATA_DIR)
    env["DEBUG"] = "true"
    return env


class PullNotKilled(AssertionError):
    pass


def kill_pull_when(name: str, ready: Callable[[], bool], *, poll: float = 0.05, timeout: float = 60) -> None:
    """Run ``manage.py pull name`` in a second process and SIGKILL it as soon as ``ready()`` (which
    reads the database) says so; PullNotKilled if the pull ends first or never gets there."""
    process = subprocess.Popen([sys.executable, str(settings.BASE_DIR / "manage.py"), "pull", name],
                               env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None:
                raise PullNotKilled(f"the pull ended before it could be killed: {process.stderr.read().decode()}")
            if time.monotonic() > deadline:
                raise PullNotKilled("the pull never reached the point where it was to be killed")
            time.sleep(poll)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
