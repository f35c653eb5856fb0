"""The merge rules (DESIGN.md): dedupe, first/last seen, expiry, override reputation, counters.

These run unchanged on SQLite and PostgreSQL; the two share one set of generated statements.
"""

from datetime import UTC, datetime, timedelta
from unittest import skipUnless

from django.db import connection
from django.test import TestCase
from django.utils import timezone

from connectors.base import Record
from exchange.ingest import MergeHints, ingest_batch, merge_prepared, prepare_batch
from exchange.models import Indicator, PluginConfig, Run, Sighting
from tests.support.factories import make_config


def report(config, *records, now=None):
    return ingest_batch(config, list(records), now or timezone.now())


class MergeMatrixTests(TestCase):
    """Source A (reputation 5) owns the indicator; B reports it again with varying settings."""

    def setUp(self):
        self.now = timezone.now().replace(microsecond=0)
        self.a = make_config("A", reputation=5, aging_days=30)
        self.t0 = self.now - timedelta(days=3)
        report(self.a, Record("evil.example.com", "domain", first_seen=self.t0, last_seen=self.t0,
                              severity="medium", tags=["phishing"], comments="from A"), now=self.now)

    def indicator(self):
        return Indicator.objects.get(type="domain", value="evil.example.com")

    def second_report(self, *, reputation, override, first=None, last=None):
        b = make_config("B", reputation=reputation, override_reputation=override, aging_days=30)
        first = first or self.now - timedelta(days=1)
        last = last or self.now - timedelta(hours=1)
        result = report(b, Record("EVIL.example.com.", "domain", first_seen=first, last_seen=last,
                                  severity="critical", tags=["c2", "botnet"], comments="from B"), now=self.now)
        return b, result

    def assert_metadata(self, indicator, *, source, reputation, severity, tags, comments):
        self.assertEqual(
            (indicator.source_id, indicator.reputation, indicator.severity, indicator.tags, indicator.comments),
            (source.pk, reputation, severity, tags, comments),
        )

    def test_a_new_indicator_takes_its_source_metadata(self):
        indicator = self.indicator()
        self.assert_metadata(indicator, source=self.a, reputation=5, severity="medium", tags=["phishing"],
                             comments="from A")
        self.assertEqual((indicator.first_seen, indicator.last_seen), (self.t0, self.t0))
        self.assertEqual(indicator.expires_at, self.t0 + timedelta(days=30))
        self.assertTrue(indicator.active)

    def test_higher_reputation_with_override_replaces_metadata(self):
        b, result = self.second_report(reputation=8, override=True)
        self.assert_metadata(self.indicator(), source=b, reputation=8, severity="critical", tags=["botnet", "c2"],
                             comments="from B")
        self.assertEqual((result.created, result.updated), (0, 1))

    def test_higher_reputation_without_override_keeps_metadata(self):
        self.second_report(reputation=8, override=False)
        self.assert_metadata(self.indicator(), source=self.a, reputation=5, severity="medium", tags=["phishing"],
                             comments="from A")

    def test_equal_reputation_with_override_keeps_metadata(self):
        self.second_report(reputation=5, override=True)
        self.assert_metadata(self.indicator(), source=self.a, reputation=5, severity="medium", tags=["phishing"],
                             comments="from A")

    def test_lower_reputation_with_override_keeps_metadata(self):
        self.second_report(reputation=3, override=True)
        self.assert_metadata(self.indicator(), source=self.a, reputation=5, severity="medium", tags=["phishing"],
                             comments="from A")

    def test_first_and_last_seen_widen_whatever_happens_to_metadata(self):
        for reputation, override in [(3, False), (8, True)]:
            with self.subTest(reputation=reputation, override=override):
                PluginConfig.objects.filter(name="B").delete()
                earlier, later = self.t0 - timedelta(days=5), self.now - timedelta(minutes=5)
                self.second_report(reputation=reputation, override=override, first=earlier, last=later)
                indicator = self.indicator()
                self.assertEqual((indicator.first_seen, indicator.last_seen), (earlier, later))
                self.assertEqual(indicator.expires_at, later + timedelta(days=30))

    def test_a_later_report_never_narrows_first_and_last_seen(self):
        inside = self.t0 - timedelta(hours=1)
        b = make_config("B", reputation=9, override_reputation=True)
        report(b, Record("evil.example.com", "domain", first_seen=inside, last_seen=inside), now=self.now)
        report(b, Record("evil.example.com", "domain", first_seen=self.t0, last_seen=self.t0), now=self.now)
        indicator = self.indicator()
        self.assertEqual((indicator.first_seen, indicator.last_seen), (inside, self.t0))

    def test_each_source_keeps_its_own_sighting(self):
        b, _ = self.second_report(reputation=3, override=False)
        sightings = {s.source_id: s for s in self.indicator().sightings.all()}
        self.assertEqual(set(sightings), {self.a.pk, b.pk})
        self.assertEqual((sightings[self.a.pk].severity, sightings[self.a.pk].tags), ("medium", ["phishing"]))
        self.assertEqual((sightings[b.pk].severity, sightings[b.pk].tags), ("critical", ["botnet", "c2"]))
        self.assertEqual(sightings[b.pk].reputation, 3)

    def test_the_owner_updates_its_own_metadata(self):
        report(self.a, Record("evil.example.com", "domain", last_seen=self.now, severity="high", tags=["apt"]),
               now=self.now)
        self.assert_metadata(self.indicator(), source=self.a, reputation=5, severity="high", tags=["apt"], comments="")

    def test_an_indicator_whose_owner_was_deleted_takes_the_next_reporter(self):
        self.a.delete()
        b, _ = self.second_report(reputation=2, override=False)
        self.assertEqual(self.indicator().source_id, b.pk)

    def test_a_per_record_reputation_counts_for_override(self):
        b = make_config("B", reputation=2, override_reputation=True)
        report(b, Record("evil.example.com", "domain", reputation=9, severity="low"), now=self.now)
        self.assert_metadata(self.indicator(), source=b, reputation=9, severity="low", tags=[], comments="")


class ExpiryTests(TestCase):
    def setUp(self):
        self.now = timezone.now().replace(microsecond=0)

    def test_expiry_is_the_latest_sighting_expiry(self):
        short = make_config("short", aging_days=1)
        long = make_config("long", aging_days=60)
        report(long, Record("198.51.100.7", "ipv4", last_seen=self.now - timedelta(days=2)), now=self.now)
        report(short, Record("198.51.100.7", "ipv4", last_seen=self.now), now=self.now)
        indicator = Indicator.objects.get()
        self.assertEqual(indicator.expires_at, self.now - timedelta(days=2) + timedelta(days=60))

    def test_aging_zero_never_expires_and_wins_over_any_date(self):
        forever = make_config("forever", aging_days=0)
        dated = make_config("dated", aging_days=10)
        report(dated, Record("198.51.100.7", "ipv4"), now=self.now)
        report(forever, Record("198.51.100.7", "ipv4"), now=self.now)
        report(dated, Record("198.51.100.7", "ipv4", last_seen=self.now), now=self.now + timedelta(seconds=1))
        self.assertIsNone(Indicator.objects.get().expires_at)

    def test_a_report_older_than_the_aging_is_stored_inactive(self):
        config = make_config("feed", aging_days=7)
        report(config, Record("198.51.100.7", "ipv4", last_seen=self.now - timedelta(days=8)), now=self.now)
        indicator = Indicator.objects.get()
        self.assertFalse(indicator.active)
        self.assertLess(indicator.expires_at, self.now)

    def test_a_new_sighting_reactivates_an_expired_indicator(self):
        config = make_config("feed", aging_days=7)
        report(config, Record("198.51.100.7", "ipv4", last_seen=self.now - timedelta(days=8)), now=self.now)
        report(config, Record("198.51.100.7", "ipv4", last_seen=self.now), now=self.now)
        indicator = Indicator.objects.get()
        self.assertTrue(indicator.active)
        self.assertEqual(indicator.expires_at, self.now + timedelta(days=7))

    def test_future_timestamps_are_clamped_to_now(self):
        config = make_config("feed", aging_days=7)
        future = self.now + timedelta(days=365)
        report(config, Record("198.51.100.7", "ipv4", first_seen=future, last_seen=future), now=self.now)
        indicator = Indicator.objects.get()
        self.assertEqual((indicator.first_seen, indicator.last_seen), (self.now, self.now))


class DedupeAndCounterTests(TestCase):
    def setUp(self):
        self.now = timezone.now().replace(microsecond=0)
        self.config = make_config("feed")

    def test_duplicates_within_a_batch_become_one_indicator(self):
        result = report(
            self.config,
            Record("HXXP://Evil.Example.com:80/a", None, tags=["x"]),
            Record("http://evil.example.com/a", "url", tags=["y"]),
            Record("http://evil.example.com/a#frag", "url"),
            now=self.now,
        )
        self.assertEqual((result.received, result.created, result.unchanged), (3, 1, 2))
        sighting = Sighting.objects.get()
        self.assertEqual((sighting.hits, sighting.tags), (3, ["x", "y"]))
        self.assertEqual(Indicator.objects.get().value, "http://evil.example.com/a")

    def test_the_same_value_across_batches_is_one_indicator(self):
        first = report(self.config, Record("d41d8cd98f00b204e9800998ecf8427e", "md5"), now=self.now)
        second = report(self.config, Record("D41D8CD98F00B204E9800998ECF8427E", "md5"),
                        now=self.now + timedelta(minutes=5))
        self.assertEqual((first.created, second.created, second.updated), (1, 0, 1))
        self.assertEqual(Indicator.objects.count(), 1)
        self.assertEqual(Sighting.objects.get().hits, 2)

    def test_an_identical_report_changes_nothing(self):
        record = Record("198.51.100.9", "ipv4", last_seen=self.now - timedelta(hours=1), tags=["t"])
        report(self.config, record, now=self.now)
        before = Indicator.objects.values().get()
        again = report(self.config, record, now=self.now + timedelta(minutes=1))
        self.assertEqual((again.created, again.updated, again.unchanged), (0, 0, 1))
        self.assertEqual(Indicator.objects.values().get(), before)
        self.assertEqual(Sighting.objects.get().hits, 1)

    def test_same_value_of_two_types_is_two_indicators(self):
        report(self.config, Record("evil.example.com", "domain"), Record("evil.example.com", "hostname"), now=self.now)
        self.assertEqual(sorted(Indicator.objects.values_list("type", flat=True)), ["domain", "hostname"])

    def test_counters_add_up_and_rejects_carry_their_reason(self):
        result = report(
            self.config,
            Record("198.51.100.1", "ipv4"), Record("999.1.1.1", "ipv4", position=7), Record("198.51.100.1", "ipv4"),
            Record("not a hash", "sha256"), Record("bad line", error="line 9: has 1 columns"),
            now=self.now,
        )
        self.assertEqual(result.received, result.created + result.updated + result.unchanged + result.rejected)
        self.assertEqual((result.created, result.rejected), (1, 3))
        reasons = {r.position: r.reason for r in result.rejections}
        self.assertEqual(reasons[7], "ipv4: 999.1.1.1 is not an IPv4 address")
        self.assertIn("line 9: has 1 columns", reasons.values())
        self.assertTrue(any(reason.startswith("sha256: not a hash") for reason in reasons.values()))

    def test_tags_and_severity_are_cleaned(self):
        report(self.config, Record("198.51.100.2", "ipv4", severity="Informational", tags=" a , b,,a,  "),
               Record("198.51.100.3", "ipv4", severity="apocalyptic", reputation="n/a"), now=self.now)
        by_value = {i.value: i for i in Indicator.objects.all()}
        self.assertEqual((by_value["198.51.100.2"].severity, by_value["198.51.100.2"].tags), ("low", ["a", "b"]))
        self.assertEqual((by_value["198.51.100.3"].severity, by_value["198.51.100.3"].reputation), ("unknown", 5))

    def test_records_sharing_a_tag_list_and_timestamps_each_keep_what_they_were_given(self):
        # A source hands one tag list and one pair of timestamps to runs of records; the ingest
        # works them out once per run, and must not carry them over to the records in between.
        shared, earlier, later = ["feed", "c2"], self.now - timedelta(days=2), self.now - timedelta(hours=2)
        report(self.config, *(Record(f"198.51.100.{i}", "ipv4", tags=shared, first_seen=earlier, last_seen=later)
                               for i in range(1, 4)),
               Record("198.51.100.4", "ipv4", tags=["other"]), Record("198.51.100.5", "ipv4"),
               Record("198.51.100.6", "ipv4", tags=shared, first_seen=earlier, last_seen=later),
               Record("198.51.100.7", "ipv4", tags="x, y", last_seen=later), now=self.now)
        stored = {value: (tags, first, last) for value, tags, first, last in Indicator.objects.values_list(
            "value", "tags", "first_seen", "last_seen")}
        for i in (1, 2, 3, 6):
            self.assertEqual(stored[f"198.51.100.{i}"], (["c2", "feed"], earlier, later))
        self.assertEqual(stored["198.51.100.4"], (["other"], self.now, self.now))
        self.assertEqual(stored["198.51.100.5"], ([], self.now, self.now))
        self.assertEqual(stored["198.51.100.7"], (["x", "y"], later, later))

    def test_a_large_batch_merges_every_row(self):
        values = [f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}" for i in range(2500)]
        result = report(self.config, *[Record(value, "ipv4") for value in values], now=self.now)
        self.assertEqual(result.created, 2500)
        self.assertEqual(Sighting.objects.filter(source=self.config).count(), 2500)


class MergeHintTests(TestCase):
    """The per-run hints change how a batch is written, never what is stored."""

    def setUp(self):
        self.now = timezone.now().replace(microsecond=0)
        self.owner = make_config("owner", reputation=5)
        report(self.owner, Record("198.51.100.1", "ipv4", severity="high", tags=["owned"]), now=self.now)

    def test_a_batch_guessed_all_new_that_is_not_is_merged_all_the_same(self):
        newcomer = make_config("newcomer", reputation=3)
        hints = MergeHints(source_has_sightings=False)
        self.assertTrue(hints.all_new)
        result = ingest_batch(newcomer, [Record("198.51.100.1", "ipv4", severity="low"),
                                         Record("198.51.100.2", "ipv4", severity="low")], self.now, hints=hints)
        self.assertEqual((result.created, result.updated, result.unchanged), (1, 1, 0))
        kept = Indicator.objects.get(value="198.51.100.1")
        self.assertEqual((kept.source_id, kept.severity, kept.tags), (self.owner.pk, "high", ["owned"]))
        self.assertEqual(kept.sightings.count(), 2)
        new = Indicator.objects.get(value="198.51.100.2")
        self.assertEqual((new.source_id, new.severity, new.active), (newcomer.pk, "low", True))
        self.assertFalse(hints.all_new)  # learnt: not every row was new

    def test_an_all_new_batch_is_stored_exactly_as_the_upsert_stores_it(self):
        fast, slow = make_config("fast", aging_days=0), make_config("slow", aging_days=0)
        records = [Record(f"fast{i}.example.com", "domain", tags=["t", "ünïcode"], comments="c", external_id=f"x{i}",
                          first_seen=self.now - timedelta(days=1), last_seen=self.now) for i in range(3)]
        ingest_batch(fast, records, self.now, hints=MergeHints(source_has_sightings=False))
        ingest_batch(slow, [Record(r.value.replace("fast", "slow"), r.type, tags=r.tags, comments=r.comments,
                                   external_id=r.external_id, first_seen=r.first_seen, last_seen=r.last_seen)
                            for r in records], self.now, hints=None)

        def stored(source):
            fields = ["type", "first_seen", "last_seen", "expires_at", "active", "reputation", "severity", "tags",
                      "comments", "created", "updated"]
            indicators = list(Indicator.objects.filter(source=source).order_by("value").values(*fields))
            sightings = list(Sighting.objects.filter(source=source).order_by("indicator__value").values(
                "first_seen", "last_seen", "expires_at", "reputation", "severity", "tags", "comments", "hits"))
            return indicators, sightings

        self.assertEqual(stored(fast), stored(slow))
        self.assertEqual(len(stored(fast)[0]), 3)

    def test_every_kind_of_field_is_stored_by_the_all_new_copy_as_by_the_upsert(self):
        # Microseconds, a moment before 2000 (the binary format counts from there), an expired
        # report (stored inactive), duplicates (hits 2), a per-record reputation, no tags, text
        # outside ASCII, long and empty external ids, and aging off (no expiry) on a second pair.
        old = datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
        recent = self.now - timedelta(minutes=5, microseconds=123_457)

        def records(prefix: str) -> list[Record]:
            return [
                Record(f"a.{prefix}.example", "domain", first_seen=old, last_seen=recent, reputation=9,
                       severity="critical", tags=["zeta", "ålpha"], comments="Ünïcode ✓ — line\nbreak",
                       external_id="é" * 300),
                Record(f"a.{prefix}.example", "domain", first_seen=old, last_seen=recent, external_id="second"),
                Record(f"b.{prefix}.example", "domain", first_seen=old, last_seen=old + timedelta(days=1)),
                Record(f"http://c.{prefix}.example:8080/p?q=1", "url", tags=[], comments=""),
                Record(f"D.{prefix.upper()}.EXAMPLE", "domain", reputation="bad", severity="Informational"),
            ]

        def stored(source):
            indicators = list(Indicator.objects.filter(source=source).order_by("value").values(
                "type", "first_seen", "last_seen", "expires_at", "active", "reputation", "severity", "tags",
                "comments", "created", "updated"))
            sightings = list(Sighting.objects.filter(source=source).order_by("indicator__value").values(
                "indicator__type", "first_seen", "last_seen", "expires_at", "reputation", "severity", "tags",
                "comments", "external_id", "hits", "created", "updated"))
            values = list(Indicator.objects.filter(source=source).order_by("value").values_list("value", flat=True))
            return indicators, sightings, [value.replace(source.name, "") for value in values]

        for aging in (30, 0):
            fast, slow = make_config(f"fast{aging}", aging_days=aging), make_config(f"slow{aging}", aging_days=aging)
            copied = ingest_batch(fast, records(f"fast{aging}"), self.now, hints=MergeHints(source_has_sightings=False))
            upserted = ingest_batch(slow, records(f"slow{aging}"), self.now, hints=None)
            self.assertEqual((copied.created, copied.updated, copied.unchanged), (4, 0, 1))
            self.assertEqual((upserted.created, upserted.updated, upserted.unchanged), (4, 0, 1))
            self.assertEqual(stored(fast), stored(slow))
            indicators, sightings, _ = stored(fast)
            self.assertEqual([row["active"] for row in indicators], [True, aging == 0, True, True])
            self.assertEqual(sightings[0]["hits"], 2)
            self.assertEqual(sightings[0]["external_id"], "second")
            self.assertEqual(indicators[0]["first_seen"], old)

    def test_a_batch_encoded_ahead_is_stored_as_the_upsert_stores_it(self):
        # After a batch of only new indicators, the next ones of that source are encoded for the
        # COPY as they are prepared (on PostgreSQL): what they store must not differ either.
        fast, slow = make_config("fast", aging_days=7), make_config("slow", aging_days=7)
        hints = MergeHints(source_has_sightings=False)
        ingest_batch(fast, [Record("first.fast.example", "domain")], self.now, hints=hints)

        def records(source) -> list[Record]:
            return [Record(f"{i}.{source.name}.example", "domain", reputation=i + 1, tags=["é", str(i)],
                           comments=f"#{i}", external_id=f"x{i}", last_seen=self.now - timedelta(days=i * 4))
                    for i in range(3)] + [Record(f"1.{source.name}.example", "domain", external_id="again")]

        prepared = prepare_batch(fast, records(fast), self.now)
        self.assertEqual(prepared.encoded is not None, connection.vendor == "postgresql")
        copied = merge_prepared(fast, prepared, hints)
        upserted = ingest_batch(slow, records(slow), self.now)
        self.assertEqual((copied.created, copied.unchanged), (upserted.created, upserted.unchanged))

        def stored(source):
            indicators = Indicator.objects.filter(source=source, value__regex=r"^[0-9]\.").order_by("value")
            return ([(i.value.split(".")[0], i.first_seen, i.last_seen, i.expires_at, i.active, i.reputation, i.tags,
                      i.comments, i.created) for i in indicators],
                    [(s.first_seen, s.expires_at, s.reputation, s.tags, s.comments, s.external_id, s.hits, s.updated)
                     for s in Sighting.objects.filter(source=source, indicator__in=indicators)
                     .order_by("indicator__value")])

        self.assertEqual(stored(fast), stored(slow))
        self.assertEqual([row[4] for row in stored(fast)[0]], [True, True, False])  # 8 days ago, aging 7

    def test_a_batch_staged_ahead_is_merged_as_one_staged_when_merged(self):
        # After a batch that went through the staging table, the next ones of that source are
        # encoded for it as they are prepared (on PostgreSQL): the merge must come out the same.
        ahead, inline = make_config("ahead"), make_config("inline")

        def records(source, step: int) -> list[Record]:
            return [Record(f"{i}.{source.name}.example", "domain", severity="high" if step and i % 2 else "low",
                           tags=["t"], external_id=f"{step}-{i}" if i == 1 else "", last_seen=self.now)
                    for i in range(4 + step)]

        hints = MergeHints(source_has_sightings=False)
        for step in range(3):
            prepared = prepare_batch(ahead, records(ahead, step), self.now)
            if step == 2:
                self.assertEqual(prepared.staged is not None, connection.vendor == "postgresql")
            merged = merge_prepared(ahead, prepared, hints)
            expected = ingest_batch(inline, records(inline, step), self.now)
            self.assertEqual((merged.created, merged.updated, merged.unchanged),
                             (expected.created, expected.updated, expected.unchanged))
        self.assertEqual((merged.created, merged.updated, merged.unchanged), (1, 1, 4))  # 5 new, 1 re-identified

        def stored(source):
            return [(s.indicator.value.split(".")[0], s.indicator.severity, s.indicator.tags, s.severity, s.external_id,
                     s.hits) for s in Sighting.objects.filter(source=source).select_related("indicator")
                    .order_by("indicator__value")]

        self.assertEqual(stored(ahead), stored(inline))

    def test_hints_learn_from_the_last_batch(self):
        hints = MergeHints(source_has_sightings=True)
        self.assertEqual((hints.all_new, hints.drop_unchanged), (False, True))
        hints.learn(rows=10, created=10, updated=0)
        self.assertEqual((hints.all_new, hints.drop_unchanged), (True, False))
        hints.learn(rows=10, created=2, updated=3)
        self.assertEqual((hints.all_new, hints.drop_unchanged), (False, True))


@skipUnless(connection.vendor == "postgresql", "ids are drawn from sequences on PostgreSQL only")
class IdReservationTests(TestCase):
    """The all-new COPY draws its ids itself: as a range when they are contiguous, one by one otherwise."""

    def test_contiguous_ids_come_as_a_range(self):
        from exchange.merge import _reserve_ids

        with connection.cursor() as cursor:
            # Any two tables with sequences: the draw takes several in one statement.
            ids, run_ids = _reserve_ids(cursor, 50, Indicator._meta.db_table, Run._meta.db_table)
        for drawn in (ids, run_ids):
            self.assertIsInstance(drawn, range)
            self.assertEqual(len(drawn), 50)

    def test_scattered_ids_are_returned_as_drawn(self):
        from exchange.merge import _reserve_ids

        table = Indicator._meta.db_table
        with connection.cursor() as cursor:
            # As when other sessions draw from the sequence at the same time: gaps between the values.
            cursor.execute(f"ALTER TABLE {table} ALTER COLUMN id SET INCREMENT BY 3")
            ids, run_ids = _reserve_ids(cursor, 5, table, Run._meta.db_table)
            cursor.execute(f"ALTER TABLE {table} ALTER COLUMN id SET INCREMENT BY 1")
        self.assertNotIsInstance(ids, range)
        self.assertEqual(len(set(ids)), 5)
        self.assertEqual(sorted(ids), list(range(min(ids), min(ids) + 15, 3)))
        self.assertEqual(len(run_ids), 5)  # the other table's, contiguous, stay a range
        self.assertIsInstance(run_ids, range)

    def test_the_draw_can_turn_synchronous_commit_off_for_the_transaction(self):
        from exchange.merge import _reserve_ids

        with connection.cursor() as cursor:
            (ids,) = _reserve_ids(cursor, 3, Indicator._meta.db_table, synchronous_commit_off=True)
            cursor.execute("SHOW synchronous_commit")
            self.assertEqual(cursor.fetchone()[0], "off")
        self.assertEqual(len(ids), 3)

    def test_a_copied_batch_leaves_the_ids_it_drew_to_itself(self):
        config = make_config("copied")
        now = timezone.now()
        ingest_batch(config, [Record(f"{i}.copied.example", "domain") for i in range(20)], now,
                     hints=MergeHints(source_has_sightings=False))
        # Later inserts take their ids from the same sequences: none may collide.
        ingest_batch(make_config("later"), [Record(f"{i}.later.example", "domain") for i in range(20)], now)
        Indicator.objects.create(type="domain", value="orm.example", first_seen=now, last_seen=now)
        self.assertEqual(Indicator.objects.count(), 41)
        self.assertEqual(Sighting.objects.values("indicator", "source").distinct().count(), 40)
