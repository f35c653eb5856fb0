"""STIX indicator objects to records (parsed patterns), and indicators to STIX objects and back."""

import json
from datetime import UTC, datetime, timedelta

from django.test import SimpleTestCase

from connectors.base import Outbound
from connectors.taxii import stix
from connectors.taxii.patterns import parse, read_object, reputation

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


def obj(pattern: str, **fields) -> dict:
    return {"type": "indicator", "spec_version": "2.1", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "created": "2024-05-01T10:00:00.000Z", "modified": "2024-05-20T08:30:00.000Z",
            "pattern": pattern, "pattern_type": "stix", "valid_from": "2024-05-01T10:00:00Z", **fields}


def kept(pattern: str, **fields) -> list[tuple[str, str]]:
    return [(r.type, r.value) for r in read_object(obj(pattern, **fields), NOW).records if not r.error]


def refused(pattern: str, **fields) -> list[str]:
    return [r.error for r in read_object(obj(pattern, **fields), NOW).records if r.error]


class ObservableTests(SimpleTestCase):
    def test_each_supported_object_path_gives_its_indicator_type(self):
        cases = {
            "[url:value = 'http://bad.example/x']": ("url", "http://bad.example/x"),
            "[domain-name:value = 'bad.example']": ("domain", "bad.example"),
            "[ipv4-addr:value = '198.51.100.7']": ("ipv4", "198.51.100.7"),
            "[ipv4-addr:value = '198.51.100.0/24']": ("cidr", "198.51.100.0/24"),
            "[ipv6-addr:value = '2001:db8::1']": ("ipv6", "2001:db8::1"),
            "[ipv6-addr:value = '2001:db8::/32']": ("cidr", "2001:db8::/32"),
            "[email-addr:value = 'ceo@bad.example']": ("email", "ceo@bad.example"),
            "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']": ("md5", "d41d8cd98f00b204e9800998ecf8427e"),
            "[file:hashes.'SHA-1' = '" + "a" * 40 + "']": ("sha1", "a" * 40),
            "[file:hashes.'SHA-256' = '" + "b" * 64 + "']": ("sha256", "b" * 64),
            "[file:hashes.SHA1 = '" + "c" * 40 + "']": ("sha1", "c" * 40),
            "[file:hashes.SHA256 = '" + "d" * 64 + "']": ("sha256", "d" * 64),
            "[ipv4-addr:value ISSUBSET '203.0.113.0/24']": ("cidr", "203.0.113.0/24"),
        }
        for pattern, expected in cases.items():
            with self.subTest(pattern):
                self.assertEqual(kept(pattern), [expected])

    def test_escaped_quotes_and_backslashes_are_read_from_the_parse_tree(self):
        self.assertEqual(kept(r"[url:value = 'http://bad.example/it\'s\\here']"),
                         [("url", "http://bad.example/it's\\here")])
        # A "]" or " OR " inside a value is part of the value, not of the pattern.
        self.assertEqual(kept("[url:value = 'http://bad.example/a] OR [b']"), [("url", "http://bad.example/a] OR [b")])

    def test_an_in_set_gives_one_indicator_per_member(self):
        self.assertEqual(kept("[domain-name:value IN ('a.example', 'b.example')]"),
                         [("domain", "a.example"), ("domain", "b.example")])

    def test_the_metadata_of_the_object_follows_each_record(self):
        record = read_object(obj("[domain-name:value = 'bad.example']", confidence=73, labels=["phishing"],
                                 indicator_types=["malicious-activity"], description="Kit host"), NOW).records[0]
        self.assertEqual(record.reputation, 8)
        self.assertEqual(record.tags, ["phishing", "malicious-activity"])
        self.assertEqual(record.first_seen, datetime(2024, 5, 1, 10, tzinfo=UTC))
        self.assertEqual(record.last_seen, datetime(2024, 5, 20, 8, 30, tzinfo=UTC))
        self.assertEqual(record.comments, "Kit host")
        self.assertEqual(record.external_id, "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f")

    def test_confidence_maps_to_reputation_in_tenths_rounded_up(self):
        table = {0: 1, 1: 1, 10: 1, 11: 2, 50: 5, 55: 6, 90: 9, 91: 10, 100: 10, None: None, "high": None}
        self.assertEqual({confidence: reputation(confidence) for confidence in table}, table)
        self.assertIsNone(reputation(True))

    def test_a_stix_2_0_indicator_without_pattern_type_is_read(self):
        legacy = obj("[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']", labels=["malicious-activity"])
        del legacy["pattern_type"], legacy["spec_version"]
        records = read_object(legacy, NOW).records
        self.assertEqual([(r.type, r.value, r.tags) for r in records],
                         [("md5", "d41d8cd98f00b204e9800998ecf8427e", ["malicious-activity"])])

    def test_objects_that_are_not_indicators_give_nothing(self):
        for other in ({"type": "malware", "id": "malware--1", "name": "x"}, {"type": "relationship"}, "junk", None):
            reading = read_object(other, NOW)
            self.assertEqual((reading.records, reading.withdrawn), ([], []))


class CompoundTests(SimpleTestCase):
    pattern = ("([url:value = 'http://bad.example/a'] OR [domain-name:value = 'bad.example']) FOLLOWEDBY "
               "[file:hashes.'SHA-256' = '" + "e" * 64 + "' AND file:name = 'invoice.exe'] WITHIN 600 SECONDS")

    def test_each_comparison_is_its_own_indicator_with_the_whole_pattern_in_its_comments(self):
        records = read_object(obj(self.pattern, description="Stage two"), NOW).records
        self.assertEqual([(r.type, r.value) for r in records],
                         [("url", "http://bad.example/a"), ("domain", "bad.example"), ("sha256", "e" * 64)])
        for record in records:
            self.assertEqual(record.comments, "Stage two\n\nCompound STIX pattern (each comparison is its own "
                                              f"indicator): {self.pattern}")
        self.assertTrue(parse(self.pattern)[1])

    def test_a_single_comparison_is_not_compound(self):
        comparisons, compound = parse("[url:value = 'http://bad.example/a']")
        self.assertFalse(compound)
        self.assertEqual(read_object(obj("[url:value = 'http://bad.example/a']"), NOW).records[0].comments, "")

    def test_a_comparison_that_names_no_value_is_refused_and_its_partners_kept(self):
        records = read_object(obj("[domain-name:value LIKE '%.bad.example'] OR [ipv4-addr:value = '198.51.100.7']"),
                              NOW).records
        self.assertEqual([(r.type, r.value) for r in records if not r.error], [("ipv4", "198.51.100.7")])
        self.assertEqual([(r.type, r.value, r.error) for r in records if r.error], [(
            "domain", "domain-name:value LIKE '%.bad.example'",
            "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f: domain-name:value LIKE '%.bad.example': a LIKE "
            "comparison does not name one value, so it cannot be an indicator",
        )])

    def test_negations_orders_and_regular_expressions_are_refused(self):
        for pattern, operator in (("[email-addr:value != 'ceo@good.example']", "!="),
                                  ("[url:value NOT = 'http://good.example/']", "NOT ="),
                                  ("[url:value MATCHES '^http://.*']", "MATCHES"),
                                  ("[ipv4-addr:value > '10.0.0.1']", ">")):
            with self.subTest(pattern):
                errors = refused(pattern)
                self.assertEqual(len(errors), 1)
                self.assertIn(f"a {operator} comparison does not name one value", errors[0])
                self.assertEqual(kept(pattern), [])


class RefusalTests(SimpleTestCase):
    def test_other_pattern_languages_are_refused_with_their_name(self):
        for language in ("sigma", "yara", "snort", "suricata"):
            with self.subTest(language):
                errors = refused("rule x { condition: true }", pattern_type=language)
                self.assertEqual(errors, [f"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f: pattern_type "
                                          f"'{language}' is not supported (only STIX patterns are read)"])

    def test_a_broken_pattern_is_refused_with_the_parser_message(self):
        errors = refused("[url:value = 'http://bad.example/'")
        self.assertEqual(len(errors), 1)
        self.assertIn("the STIX pattern does not parse: 1:", errors[0])

    def test_a_pattern_on_nothing_this_system_keeps_is_refused(self):
        errors = refused("[file:name = 'dropper.exe'] AND [network-traffic:dst_port = 443]")
        self.assertEqual(len(errors), 1)
        self.assertIn("no comparison in the pattern names an indicator this system keeps", errors[0])

    def test_an_indicator_without_pattern_is_refused(self):
        self.assertEqual(refused(""), ["indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f: the indicator has no pattern"])


class WithdrawnTests(SimpleTestCase):
    def test_a_revoked_indicator_gives_no_record_and_withdraws_its_values(self):
        reading = read_object(obj("[url:value = 'http://a.example/'] OR [domain-name:value = 'b.example']",
                                  revoked=True), NOW)
        self.assertEqual(reading.records, [])
        self.assertEqual(reading.withdrawn, [("domain", "b.example"), ("url", "http://a.example/")])

    def test_an_expired_indicator_is_withdrawn_and_a_valid_one_kept(self):
        expired = read_object(obj("[domain-name:value = 'old.example']",
                                  valid_until=(NOW - timedelta(seconds=1)).isoformat()), NOW)
        self.assertEqual((expired.records, expired.withdrawn), ([], [("domain", "old.example")]))
        valid = read_object(obj("[domain-name:value = 'new.example']", valid_until="2024-06-02T00:00:00.000Z"), NOW)
        self.assertEqual([(r.type, r.value) for r in valid.records], [("domain", "new.example")])

    def test_a_revoked_broken_or_foreign_indicator_is_simply_skipped(self):
        for pattern, language in (("[url:value = ", "stix"), ("[url:value = 'http://a.example/']", "yara")):
            reading = read_object(obj(pattern, revoked=True, pattern_type=language), NOW)
            self.assertEqual((reading.records, reading.withdrawn), ([], []))


class OutboundTests(SimpleTestCase):
    def item(self, type_: str, value: str, **fields) -> Outbound:
        return Outbound(type_, value, **{"reputation": 7, "tags": ["phishing"], "comments": "from CTE",
                                          "first_seen": datetime(2024, 5, 1, tzinfo=UTC), **fields})

    def test_every_type_makes_a_pattern_that_reads_back_as_the_same_indicator(self):
        values = {"url": "http://bad.example/it's\\here", "domain": "bad.example", "hostname": "www.bad.example",
                  "ipv4": "198.51.100.7", "ipv6": "2001:db8::1", "cidr": "198.51.100.0/24", "email": "x@bad.example",
                  "md5": "d41d8cd98f00b204e9800998ecf8427e", "sha1": "a" * 40, "sha256": "b" * 64}
        self.assertEqual(set(values), set(stix.TYPES))
        back_as = {"hostname": "domain"}
        for type_, value in values.items():
            with self.subTest(type_):
                made = stix.indicator(self.item(type_, value), NOW)
                records = read_object(made, NOW).records
                self.assertEqual([(r.type, r.value, r.reputation, r.tags, r.comments) for r in records],
                                 [(back_as.get(type_, type_), value, 7, ["phishing"], "from CTE")])
        self.assertEqual(stix.pattern("cidr", "2001:db8::/32"), "[ipv6-addr:value = '2001:db8::/32']")

    def test_the_object_id_depends_on_type_and_value_only(self):
        first = stix.indicator(self.item("domain", "bad.example"), NOW)
        later = stix.indicator(self.item("domain", "bad.example", reputation=2, tags=[]), NOW + timedelta(days=3))
        self.assertEqual(first["id"], later["id"])
        self.assertNotEqual(first["id"], stix.indicator(self.item("hostname", "bad.example"), NOW)["id"])
        self.assertEqual((first["created"], later["created"]), ("2024-05-01T00:00:00.000Z",) * 2)
        self.assertLess(first["modified"], later["modified"])

    def test_the_object_carries_the_indicator_fields(self):
        made = stix.indicator(self.item("url", "http://bad.example/", expires_at=datetime(2024, 9, 1, tzinfo=UTC)),
                              NOW)
        self.assertEqual({key: made[key] for key in ("type", "spec_version", "pattern_type", "valid_from",
                                                     "valid_until", "confidence", "labels", "description", "name")},
                         {"type": "indicator", "spec_version": "2.1", "pattern_type": "stix",
                          "valid_from": "2024-05-01T00:00:00Z", "valid_until": "2024-09-01T00:00:00Z",
                          "confidence": 70, "labels": ["phishing"], "description": "from CTE",
                          "name": "http://bad.example/"})

    def test_envelopes_stay_within_the_size_and_keep_every_object(self):
        objects = [(f"key{n}", json.dumps({"n": n, "pad": "x" * (n * 10)}).encode()) for n in range(40)]
        sent = list(stix.envelopes(objects, 1000))
        self.assertGreater(len(sent), 5)
        for keys, body in sent:
            self.assertLessEqual(len(body), 1000)
            self.assertEqual([obj["n"] for obj in json.loads(body)["objects"]], [int(k[3:]) for k in keys])
        self.assertEqual([k for keys, _ in sent for k in keys], [k for k, _ in objects])
