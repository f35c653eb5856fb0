"""What every run shares: the worker's identity, closing a run, and closing interrupted ones."""

import os
import socket

from django.utils import timezone

from exchange.models import Run

INTERRUPTED = (
    "interrupted: the process running it stopped before it finished (killed, timed out or crashed); "
    "the next run resumed from the last batch it saved"
)


def worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def close_interrupted(kind: str, config=None, sharing=None) -> int:
    """Mark runs left 'running' by a dead process as failed. Call only while holding the lock."""
    return Run.objects.filter(kind=kind, config=config, sharing=sharing, status=Run.Status.RUNNING).update(
        status=Run.Status.FAILED, finished=timezone.now(), error=INTERRUPTED
    )


def start(kind: str, *, config=None, sharing=None, trigger: str = "", since=None, started=None) -> Run:
    return Run.objects.create(kind=kind, config=config, sharing=sharing, trigger=trigger,
                              started=started or timezone.now(), since=since, worker=worker())


def finish(run: Run, *, error: str = "", **counters) -> Run:
    status = Run.Status.FAILED if error else Run.Status.SUCCESS
    Run.objects.filter(pk=run.pk).update(status=status, finished=timezone.now(), error=error, **counters)
    run.refresh_from_db()
    return run
