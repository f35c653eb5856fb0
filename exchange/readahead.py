"""Read ahead: run a producer in a thread, a bounded number of items ahead of its consumer.

A pull uses it so that the connector fetches, and the ingest normalizes, the next batch while
this one merges: the database's work, the network's and Python's overlap instead of adding up.
The producer must not use the database (connectors do not); its exceptions reach the consumer.
"""

import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

_ITEM, _END, _ERROR = range(3)
SWITCH_INTERVAL = 0.0005  # seconds


def read_ahead(produce: Callable[[], Iterator[T]], depth: int = 1, name: str = "cte-read-ahead") -> Iterator[T]:
    """Yield what ``produce()`` yields, computed in a thread up to ``depth`` items early."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: int, value) -> bool:
        while not stop.is_set():
            try:
                items.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        source = produce()
        try:
            for item in source:
                if not put(_ITEM, item):
                    return
            put(_END, None)
        except BaseException as exc:
            put(_ERROR, exc)
        finally:
            close = getattr(source, "close", None)
            if close:
                close()  # the producer's cleanup (an open response, say) runs in its own thread

    thread = threading.Thread(target=run, name=name, daemon=True)
    # Both threads want the GIL; the consumer mostly waits on sockets. A short switch interval
    # hands the GIL back within half a millisecond when its answer arrives, instead of five.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, SWITCH_INTERVAL))
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == _ITEM:
                yield value
            elif kind == _END:
                return
            else:
                raise value
    finally:
        stop.set()
        thread.join(timeout=30)
        sys.setswitchinterval(interval)
