"""Read ahead: run a producer in a thread, a bounded number of items ahead of its consumer.

A pull uses it so that the connector fetches, and the ingest normalizes, the next batch while
this one merges: the database's work, the network's and Python's overlap instead of adding up.
The producer must not use the database (connectors do not); its exceptions reach the consumer.
"""

import gc
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

_ITEM, _END, _ERROR = range(3)
SWITCH_INTERVAL = 0.0001  # seconds
# Allocations between two young-generation collections while a read-ahead runs (CPython's default: 700).
GC_YOUNG_THRESHOLD = 50_000


def read_ahead(produce: Callable[[], Iterator[T]], depth: int = 3, name: str = "cte-read-ahead") -> Iterator[T]:
    """Yield what ``produce()`` yields, computed in a thread up to ``depth`` items early.

    More than one: when one item takes the consumer longer (a checkpoint on the database, a busy
    server), the producer keeps going instead of waiting, and the consumer then finds the next
    items ready (benchmarks/ingest.py: a first pull's ratio 0.44 -> 0.47-0.52 from 1 to 3).

    The items the consumer is done with are released in the producer's thread too: freeing a
    batch's tens of thousands of objects took the consumer, a pull writing to the database, 3 ms
    per batch during which the database waited (benchmarks/ingest.py)."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    # An item goes here when the consumer asks for the one after the next: by then it no longer
    # holds it (it holds the item it asked for last), so the producer's reference is the last one.
    finished: deque = deque()

    def put(kind: int, value) -> bool:
        while not stop.is_set():
            finished.clear()
            try:
                items.put((kind, value), timeout=0.1)
                finished.clear()
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
    with _tuned():
        thread.start()
        recent: deque = deque()
        try:
            while True:
                if len(recent) == 2:
                    finished.append(recent.popleft())
                kind, value = items.get()
                if kind == _ITEM:
                    recent.append(value)
                    del value  # the consumer's reference and ``recent``'s only
                    yield recent[-1]
                elif kind == _END:
                    return
                else:
                    raise value
        finally:
            stop.set()
            thread.join(timeout=30)


_tuning = threading.Lock()
_tuned_count = 0
_saved: tuple = ()


@contextmanager
def _tuned() -> Iterator[None]:
    """The interpreter's settings for a read-ahead, while at least one runs (they are process-wide):

    - both threads want the GIL and the consumer mostly waits on sockets: a short switch interval
      hands the GIL back within a tenth of a millisecond when its answer arrives, instead of five
      (the producer is asked to let go only while the consumer waits for it, so this costs little;
      a first pull of 1M with the database's rows encoded ahead: 9.7-10.9 s at 0.1 ms, 10.5-11.7 s
      at 0.5 ms, alternating);
    - a batch's records, rows and their parts are allocated by the million and all live until the
      batch is merged, so the collector's young generation, run every 700 allocations, finds
      nothing to free, and each object it keeps moves on to the older ones, until full collections
      walk the whole heap again and again: a quarter of a pull's Python time (benchmarks/ingest.py).
      Collecting every 50,000 allocations instead costs at most that many objects' worth of memory.
    """
    global _tuned_count, _saved
    with _tuning:
        if _tuned_count == 0:
            _saved = (sys.getswitchinterval(), gc.get_threshold())
            sys.setswitchinterval(min(_saved[0], SWITCH_INTERVAL))
            young, *older = _saved[1]
            gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), *older)
        _tuned_count += 1
    try:
        yield
    finally:
        with _tuning:
            _tuned_count -= 1
            if _tuned_count == 0:
                sys.setswitchinterval(_saved[0])
                gc.set_threshold(*_saved[1])
