"""The read-ahead a pull runs its connector in: order, errors, and where finished items are freed."""

import gc
import sys
import threading
import weakref

from django.test import SimpleTestCase

from exchange.readahead import GC_YOUNG_THRESHOLD, SWITCH_INTERVAL, read_ahead


def _record_thread(freed_in: dict, number: int) -> None:
    freed_in[number] = threading.current_thread().name


class ReadAheadTests(SimpleTestCase):
    def test_every_item_comes_in_order(self):
        self.assertEqual(list(read_ahead(lambda: iter(range(100)), depth=3)), list(range(100)))

    def test_the_producers_error_reaches_the_consumer_after_its_items(self):
        def produce():
            yield 1
            yield 2
            raise ValueError("the source broke")

        received = []
        with self.assertRaisesRegex(ValueError, "the source broke"):
            for item in read_ahead(produce):
                received.append(item)
        self.assertEqual(received, [1, 2])

    def test_items_the_consumer_is_done_with_are_freed_in_the_producers_thread(self):
        freed_in: dict[int, str] = {}

        def produce():
            for number in range(20):
                item = type("Batch", (), {"number": number})()
                weakref.finalize(item, _record_thread, freed_in, number)
                yield item
                del item

        merged = []
        for batch in read_ahead(produce, name="producer"):
            merged.append(batch.number)
        del batch
        self.assertEqual(merged, list(range(20)))
        # The producer stops once it has handed over the last one: a few items of the end are freed
        # by the consumer; every one before them by the producer.
        self.assertEqual({freed_in[number] for number in range(15)}, {"producer"})
        self.assertEqual(set(freed_in), set(range(20)))

    def test_the_interpreter_settings_last_while_a_read_ahead_runs(self):
        interval, threshold = sys.getswitchinterval(), gc.get_threshold()
        seen = []
        for _ in read_ahead(lambda: iter(range(2))):
            seen.append((sys.getswitchinterval(), gc.get_threshold()[0]))
        self.assertAlmostEqual(seen[0][0], min(interval, SWITCH_INTERVAL), places=6)
        self.assertEqual(seen[0][1], max(threshold[0], GC_YOUNG_THRESHOLD))
        self.assertAlmostEqual(sys.getswitchinterval(), interval, places=6)
        self.assertEqual(gc.get_threshold(), threshold)
