"""Exclusion lists: exact values, wildcards and CIDR blocks, in SQL and in Python alike."""

from django.test import TestCase
from django.utils import timezone

from exchange.models import Indicator
from rules.exclusions import Entry, parse_exclusions
from rules.language import RuleError

SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

STORE = {
    "a.example.com": "domain",
    "x.y.example.com": "hostname",
    "xzy.example.com": "hostname",
    "example.com": "domain",
    "http://bad.example/path": "url",
    "http://bad.example.org/": "url",
    "http://good.example/x": "url",
    "d41d8cd98f00b204e9800998ecf8427e": "md5",
    SHA256: "sha256",
    "1donotsharethishash23": "md5",
    "10.1.2.3": "ipv4",
    "192.0.2.1": "ipv4",
    "10.1.0.0/16": "cidr",
    "10.0.0.0/7": "cidr",
    "2001:db8::1": "ipv6",
    "2001:db9::1": "ipv6",
    "2001:db8:1::/48": "cidr",
    "::ffff:10.0.0.1": "ipv6",
}

CASES = [
    # exact values, normalized when they have a normal form, as written otherwise
    ("A.Example.COM", {"a.example.com"}),
    ("hxxp://bad[.]example/path", {"http://bad.example/path"}),
    (SHA256.upper(), {SHA256}),
    ("1donotsharethishash23", {"1donotsharethishash23"}),
    ("10.1.2.3", {"10.1.2.3"}),
    ("2001:DB8:0::1", {"2001:db8::1"}),
    # wildcards match the whole value, ignoring case
    ("*.example.com", {"a.example.com", "x.y.example.com", "xzy.example.com"}),
    ("*.EXAMPLE.com", {"a.example.com", "x.y.example.com", "xzy.example.com"}),
    ("http://bad.example/*", {"http://bad.example/path"}),
    ("x.*.example.com", {"x.y.example.com"}),
    ("http://*/x", {"http://good.example/x"}),
    ("*example.c*", {"a.example.com", "x.y.example.com", "xzy.example.com", "example.com"}),
    ("d41d8cd9**27e", {"d41d8cd98f00b204e9800998ecf8427e"}),
    ("*[.]example[.]com", {"a.example.com", "x.y.example.com", "xzy.example.com"}),
    # CIDR blocks: addresses inside, and blocks that lie within, of the same family
    ("10.0.0.0/8", {"10.1.2.3", "10.1.0.0/16"}),
    ("10.1.0.0/16", {"10.1.2.3", "10.1.0.0/16"}),
    ("192.0.2.1/32", {"192.0.2.1"}),
    ("2001:db8::/32", {"2001:db8::1", "2001:db8:1::/48"}),
    ("::/0", {"2001:db8::1", "2001:db9::1", "2001:db8:1::/48", "::ffff:10.0.0.1"}),
    ("0.0.0.0/0", {"10.1.2.3", "192.0.2.1", "10.1.0.0/16", "10.0.0.0/7"}),
    # several entries, with comments and blank lines
    ("# partners\n\n  *.example.com  \n\t# labs\n192.0.2.0/24\n", {
        "a.example.com", "x.y.example.com", "xzy.example.com", "192.0.2.1"}),
]


class ExclusionTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        now = timezone.now()
        for value, type_ in STORE.items():
            Indicator.objects.create(type=type_, value=value, first_seen=now, last_seen=now)

    def excluded_in_sql(self, exclusions) -> set[str]:
        return set(Indicator.objects.filter(exclusions.q()).values_list("value", flat=True))

    def test_each_entry_excludes_its_indicators_in_sql_and_in_python(self):
        for text, expected in CASES:
            with self.subTest(text):
                exclusions = parse_exclusions(text)
                self.assertEqual(self.excluded_in_sql(exclusions), expected)
                kept = set(Indicator.objects.exclude(exclusions.q()).values_list("value", flat=True))
                self.assertEqual(kept, set(STORE) - expected)
                in_python = {value for value, type_ in STORE.items() if exclusions.matches(type_, value)}
                self.assertEqual(in_python, expected)

    def test_entries_keep_their_kind_canonical_text_and_line(self):
        exclusions = parse_exclusions(f"# list\n{SHA256.upper()}\n\n*.Example.com\n 10.0.0.0/8 \nfoo bar")
        self.assertEqual(exclusions.entries, (
            Entry("exact", SHA256, 2), Entry("wildcard", "*.Example.com", 4), Entry("cidr", "10.0.0.0/8", 5),
            Entry("exact", "foo bar", 6),
        ))
        self.assertEqual(len(exclusions), 4)
        self.assertEqual(str(exclusions.entries[2]), "10.0.0.0/8")

    def test_an_empty_list_excludes_nothing(self):
        for text in ("", "\n  \n", "# only comments\n#"):
            with self.subTest(text):
                exclusions = parse_exclusions(text)
                self.assertFalse(exclusions)
                self.assertEqual(self.excluded_in_sql(exclusions), set())
                self.assertEqual(Indicator.objects.exclude(exclusions.q()).count(), len(STORE))
                self.assertFalse(exclusions.matches("md5", "1donotsharethishash23"))

    def test_a_cidr_block_never_matches_other_types(self):
        exclusions = parse_exclusions("0.0.0.0/0\n::/0")
        self.assertFalse(exclusions.matches("domain", "10.1.2.3"))
        self.assertFalse(exclusions.matches("url", "http://10.1.2.3/"))
        self.assertTrue(exclusions.matches("ipv4", "10.1.2.3"))

    def test_a_malformed_block_is_an_error_with_its_line(self):
        for text, message in [
            ("a.example.com\n\n10.0.0.0/33",
             "line 3, col 1: '10.0.0.0/33' is not a CIDR block (address/prefix length)"),
            ("  2001:db8::/129", "line 1, col 1: '2001:db8::/129' is not a CIDR block (address/prefix length)"),
            ("# x\n10.0.0.1/8", "line 2, col 1: '10.0.0.1/8' has host bits set (the block is 10.0.0.0/8)"),
        ]:
            with self.subTest(text), self.assertRaises(RuleError) as raised:
                parse_exclusions(text)
            self.assertEqual(str(raised.exception), message)
