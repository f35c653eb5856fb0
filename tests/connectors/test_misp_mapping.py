"""MISP attributes to CTE records and back: every type, composite splits, MISP's loose numbers and
flags, what is skipped and what is rejected with a reason."""

from datetime import UTC, datetime

from django.test import SimpleTestCase

from connectors.base import Outbound
from connectors.misp.mapping import (
    CTE_TYPES,
    PullOptions,
    attribute_records,
    event_attributes,
    misp_types_for,
    to_attribute,
)

UUID = "5b6e0c3a-9f11-4e41-9c1b-1d3f0e6a7b20"
MAY_1 = 1714557600  # 2024-05-01 10:00 UTC
DEFAULT = PullOptions(skip_tag="cte:shared")


def attribute(type_: str, value, **fields) -> dict:
    return {"type": type_, "value": value, "to_ids": True, "deleted": False, "uuid": UUID,
            "timestamp": str(MAY_1), **fields}


def parsed(type_: str, value, options: PullOptions = DEFAULT, event: dict | None = None, **fields):
    records = attribute_records(attribute(type_, value, **fields), event or {}, options)
    return [(record.type, record.value, record.error) for record in records]


class TypeTableTests(SimpleTestCase):
    CASES = [
        # (MISP type, value, [(CTE type, canonical value)])
        ("url", "hxxp://evil[.]example/gate.php", [("url", "http://evil.example/gate.php")]),
        ("domain", "Evil.Example", [("domain", "evil.example")]),
        ("hostname", "mail.evil.example.", [("hostname", "mail.evil.example")]),
        ("ip-src", "198.51.100.7", [("ipv4", "198.51.100.7")]),
        ("ip-dst", "2001:DB8:0:0::1", [("ipv6", "2001:db8::1")]),
        ("ip-dst", "203.0.113.0/24", [("cidr", "203.0.113.0/24")]),
        ("ip-src", "2001:db8::/32", [("cidr", "2001:db8::/32")]),
        ("ip-dst|port", "192.0.2.44|8443", [("ipv4", "192.0.2.44")]),
        ("ip-src|port", "2001:db8::2|53", [("ipv6", "2001:db8::2")]),
        ("hostname|port", "c2.evil.example|443", [("hostname", "c2.evil.example")]),
        ("domain|ip", "cdn.evil.example|198.51.100.77", [("domain", "cdn.evil.example"), ("ipv4", "198.51.100.77")]),
        ("md5", "44D88612FEA8A8F36DE82E1278ABB02F", [("md5", "44d88612fea8a8f36de82e1278abb02f")]),
        ("sha1", "3395856ce81f2b7382dee72602f798b642f14140", [("sha1", "3395856ce81f2b7382dee72602f798b642f14140")]),
        ("sha256", "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
         [("sha256", "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f")]),
        ("filename|md5", "invoice.exe|e99a18c428cb38d5f260853678922e03",
         [("md5", "e99a18c428cb38d5f260853678922e03")]),
        ("filename|sha1", "a.dll|a9993e364706816aba3e25717850c26c9cd0d89d",
         [("sha1", "a9993e364706816aba3e25717850c26c9cd0d89d")]),
        # A file name may hold a "|": the hash is after the last one.
        ("filename|sha256", "invoice|may.exe|ed01ebfbc9eb5bbea545af4d01bf5f1071661840480439c6e5babe8e080e41aa",
         [("sha256", "ed01ebfbc9eb5bbea545af4d01bf5f1071661840480439c6e5babe8e080e41aa")]),
        ("malware-sample", "stage2.dll|e99a18c428cb38d5f260853678922e03",
         [("md5", "e99a18c428cb38d5f260853678922e03")]),
        ("email-src", "Billing@Invoices-Example.net", [("email", "billing@invoices-example.net")]),
        ("email-dst", "victim@corp.example", [("email", "victim@corp.example")]),
        ("email", "x@evil.example", [("email", "x@evil.example")]),
    ]

    def test_every_supported_type_maps_to_its_cte_type(self):
        for misp_type, value, expected in self.CASES:
            with self.subTest(misp_type=misp_type, value=value):
                self.assertEqual(parsed(misp_type, value), [(kind, canonical, "") for kind, canonical in expected])

    def test_every_cte_type_can_come_from_misp(self):
        produced = {kind for _, _, expected in self.CASES for kind, _ in expected}
        self.assertEqual(produced, set(CTE_TYPES))

    def test_types_cte_does_not_hold_are_skipped_silently(self):
        for misp_type, value in [("text", "the actor reuses kits"), ("regkey", r"HKCU\Software\Run\x"),
                                 ("vulnerability", "CVE-2024-3400"), ("AS", "64496"), ("port", "8443"),
                                 ("filename", "invoice.exe"), ("uri", "/gate.php"), ("link", "https://blog.example/"),
                                 ("x509-fingerprint-sha1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
                                 ("comment", "see report")]:
            with self.subTest(misp_type=misp_type):
                self.assertEqual(parsed(misp_type, value), [])

    def test_a_malformed_value_of_a_supported_type_is_rejected_with_the_reason_and_the_attribute(self):
        cases = [
            ("ip-dst", "999.1.1.1", ("ipv4", "999.1.1.1", "ipv4: 999.1.1.1 is not an IPv4 address")),
            ("md5", "abc123", ("md5", "abc123", "md5: abc123 is not an MD5 hash (32 hex digits, not 6)")),
            ("domain|ip", "cdn.evil.example|300.1.1.1",
             ("ipv4", "300.1.1.1", "ipv4: 300.1.1.1 is not an IPv4 address")),
        ]
        for misp_type, value, (kind, shown, reason) in cases:
            with self.subTest(misp_type=misp_type):
                records = parsed(misp_type, value)
                self.assertIn((kind, shown, f"{reason} (MISP {misp_type} attribute {UUID})"), records)

    def test_a_composite_without_its_separator_or_an_empty_value_is_rejected(self):
        self.assertEqual(parsed("domain|ip", "no-pipe.example"), [
            ("domain", "no-pipe.example",
             f"MISP domain|ip attribute {UUID}: 'no-pipe.example' is not two values joined by '|'")])
        self.assertEqual(parsed("ip-dst", ""), [(None, "", f"MISP ip-dst attribute {UUID} has no value")])
        self.assertEqual(parsed("md5", None), [("md5", "", f"MISP md5 attribute {UUID} has no value")])

    def test_the_search_asks_only_for_the_types_that_give_the_chosen_ones(self):
        self.assertEqual(misp_types_for(["md5"]), ["filename|md5", "malware-sample", "md5"])
        self.assertEqual(misp_types_for(["cidr"]), ["domain|ip", "ip-dst", "ip-dst|port", "ip-src", "ip-src|port"])
        self.assertEqual(misp_types_for(["domain"]), ["domain", "domain|ip"])

    def test_only_the_chosen_types_are_kept_even_from_one_composite(self):
        options = PullOptions(types=frozenset({"ipv4"}))
        self.assertEqual(parsed("domain|ip", "cdn.evil.example|198.51.100.77", options),
                         [("ipv4", "198.51.100.77", "")])
        self.assertEqual(parsed("ip-dst", "2001:db8::1", options), [])
        self.assertEqual(parsed("md5", "44d88612fea8a8f36de82e1278abb02f", options), [])


class FlagsAndNumbersTests(SimpleTestCase):
    def test_to_ids_false_is_skipped_in_every_spelling_unless_configured(self):
        for off in (False, 0, "0", "false", None):
            with self.subTest(to_ids=off):
                self.assertEqual(parsed("domain", "evil.example", to_ids=off), [])
                included = parsed("domain", "evil.example", PullOptions(include_non_ids=True), to_ids=off)
                self.assertEqual(included, [("domain", "evil.example", "")])
        for on in (True, 1, "1", "true", "True"):
            with self.subTest(to_ids=on):
                self.assertEqual(parsed("domain", "evil.example", to_ids=on), [("domain", "evil.example", "")])

    def test_deleted_attributes_are_skipped_in_every_spelling(self):
        for deleted in (True, 1, "1", "true"):
            with self.subTest(deleted=deleted):
                self.assertEqual(parsed("domain", "evil.example", deleted=deleted), [])
        for kept in (False, 0, "0"):
            with self.subTest(deleted=kept):
                self.assertEqual(len(parsed("domain", "evil.example", deleted=kept)), 1)

    def test_timestamps_as_strings_or_integers_give_the_same_times(self):
        for stamp in (str(MAY_1), MAY_1):
            with self.subTest(timestamp=stamp):
                [record] = attribute_records(attribute("domain", "evil.example", timestamp=stamp), {}, DEFAULT)
                self.assertEqual(record.first_seen, datetime(2024, 5, 1, 10, tzinfo=UTC))
                self.assertEqual(record.last_seen, datetime(2024, 5, 1, 10, tzinfo=UTC))

    def test_first_and_last_seen_win_over_the_timestamp_and_a_bad_one_falls_back(self):
        [record] = attribute_records(attribute("domain", "evil.example", first_seen="2024-04-28T08:00:00.000000+00:00",
                                               last_seen="2024-04-30T18:30:00Z"), {}, DEFAULT)
        self.assertEqual((record.first_seen, record.last_seen),
                         (datetime(2024, 4, 28, 8, tzinfo=UTC), datetime(2024, 4, 30, 18, 30, tzinfo=UTC)))
        [record] = attribute_records(attribute("domain", "evil.example", first_seen="yesterday"), {}, DEFAULT)
        self.assertEqual(record.first_seen, datetime(2024, 5, 1, 10, tzinfo=UTC))

    def test_threat_level_as_string_or_integer_gives_the_severity(self):
        for level, severity in (("1", "high"), (1, "high"), ("2", "medium"), (3, "low"), ("4", None), (None, None)):
            with self.subTest(threat_level_id=level):
                [record] = attribute_records(attribute("domain", "evil.example"), {"threat_level_id": level}, DEFAULT)
                self.assertEqual(record.severity, severity)
                self.assertIsNone(record.reputation)  # the configuration's reputation applies


class MetadataTests(SimpleTestCase):
    def test_tags_comments_and_external_id(self):
        event = {"info": "Phishing wave", "Tag": [{"name": "tlp:green"}]}
        [record] = attribute_records(
            attribute("url", "http://evil.example/x", comment="landing page", Tag=[{"name": "kill-chain:delivery"}]),
            event, DEFAULT, event_tags=["tlp:green", "kill-chain:delivery"])
        self.assertEqual(record.tags, ["kill-chain:delivery", "tlp:green"])
        self.assertEqual(record.comments, "Phishing wave; landing page")
        self.assertEqual(record.external_id, UUID)

    def test_what_carries_the_loop_prevention_tag_is_left_out(self):
        tagged = attribute("domain", "shared.example", Tag=[{"name": "cte:shared"}])
        self.assertEqual(attribute_records(tagged, {}, DEFAULT), [])
        plain = attribute("domain", "shared.example")
        self.assertEqual(attribute_records(plain, {}, DEFAULT, event_tags=["cte:shared"]), [])
        self.assertEqual(len(attribute_records(tagged, {}, PullOptions(skip_tag="other"))), 1)

    def test_an_event_s_attributes_include_its_objects_and_a_deleted_object_s_count_as_deleted(self):
        event = {"Attribute": [attribute("domain", "a.example")], "Object": [
            {"name": "domain-ip", "deleted": False, "Attribute": [attribute("ip-dst", "198.51.100.9")]},
            {"name": "domain-ip", "deleted": "1", "Attribute": [attribute("domain", "withdrawn.example")]},
        ]}
        values = [record.value for item in event_attributes(event)
                  for record in attribute_records(item, event, DEFAULT)]
        self.assertEqual(values, ["a.example", "198.51.100.9"])


class PushMappingTests(SimpleTestCase):
    def test_each_cte_type_becomes_its_misp_type_and_category(self):
        expected = {"url": ("url", "Network activity"), "domain": ("domain", "Network activity"),
                    "hostname": ("hostname", "Network activity"), "ipv4": ("ip-dst", "Network activity"),
                    "ipv6": ("ip-dst", "Network activity"), "cidr": ("ip-dst", "Network activity"),
                    "md5": ("md5", "Payload delivery"), "sha1": ("sha1", "Payload delivery"),
                    "sha256": ("sha256", "Payload delivery"), "email": ("email-src", "Payload delivery")}
        for kind, (misp_type, category) in expected.items():
            with self.subTest(kind=kind):
                made = to_attribute(Outbound(kind, "v"), {}, "cte:shared")
                self.assertEqual((made["type"], made["category"]), (misp_type, category))
                self.assertIs(made["to_ids"], True)
                self.assertEqual(made["Tag"], [{"name": "cte:shared"}])

    def test_the_action_chooses_the_ip_and_email_sides(self):
        params = {"ip_attribute": "ip-src", "email_attribute": "email-dst"}
        self.assertEqual(to_attribute(Outbound("ipv6", "2001:db8::1"), params, "t")["type"], "ip-src")
        made = to_attribute(Outbound("email", "x@evil.example"), params, "t")
        self.assertEqual((made["type"], made["category"]), ("email-dst", "Network activity"))

    def test_reputation_severity_comments_and_times_travel_in_the_attribute(self):
        first, last = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)
        made = to_attribute(Outbound("domain", "evil.example", 8, "high", comments="seen in phishing",
                                     first_seen=first, last_seen=last), {}, "t")
        self.assertEqual(made["comment"], "CTE: reputation 8/10, severity high; seen in phishing")
        self.assertEqual((made["first_seen"], made["last_seen"]), (first.isoformat(), last.isoformat()))
