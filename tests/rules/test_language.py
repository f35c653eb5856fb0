"""The rule language: what each field and operator selects, precedence, times, and the errors."""

from datetime import UTC, datetime, timedelta
from unittest import mock

from django.db.models import Q
from django.test import TestCase

from exchange.models import Indicator, Sighting
from rules.language import And, Comparison, Not, Or, RuleError, compile_rule, parse, validate
from tests.support.factories import make_config

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)

# label: (type, value, reputation, severity, tags, first_seen, last_seen, expires_at, active, comments, sources)
STORE = {
    "evil": ("url", "http://evil.com/", 8, "high", ["phishing", "apt1"], NOW - 30 * DAY, NOW - DAY, NOW + 10 * DAY,
             True, "Seen in Campaign X", ["alpha"]),
    "login": ("url", "http://good.example/login", 3, "low", [], NOW - 2 * DAY, NOW - timedelta(hours=2), None,
              True, "", ["beta"]),
    "md5": ("md5", "d41d8cd98f00b204e9800998ecf8427e", 7, "critical", ["malware"], NOW - 100 * DAY, NOW - 50 * DAY,
            NOW - 40 * DAY, False, "empty file", ["alpha", "beta"]),
    "sha256": ("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 10, "medium",
               ["malware", "Phishing"], NOW - 10 * DAY, NOW - 10 * DAY, None, True, "", []),
    "ip": ("ipv4", "198.51.100.7", 5, "unknown", ["scanner"], NOW - 21 * DAY, NOW - timedelta(minutes=30),
           NOW + 30 * DAY, True, "port scan", ["alpha-mirror"]),
    "domain": ("domain", "bad.example", 1, "low", ["phishing"], NOW - DAY, NOW - DAY, NOW + DAY, True,
               "Typosquat of good.example", []),
}
ALL = set(STORE)


def make_store(store: dict) -> None:
    """The indicators of ``store``, with a sighting by each named source."""
    sources = {}
    for type_, value, reputation, severity, tags, first, last, expires, active, comments, names in store.values():
        indicator = Indicator.objects.create(
            type=type_, value=value, reputation=reputation, severity=severity, tags=tags, first_seen=first,
            last_seen=last, expires_at=expires, active=active, comments=comments,
        )
        for name in names:
            source = sources.get(name) or sources.setdefault(name, make_config(name))
            Sighting.objects.create(indicator=indicator, source=source, first_seen=first, last_seen=last)


def but(*labels: str) -> set[str]:
    return ALL - set(labels)


VALID = [
    # type
    ("type = url", {"evil", "login"}),
    ("TYPE = URL", {"evil", "login"}),
    ("type = 'md5'", {"md5"}),
    ("type != url", but("evil", "login")),
    ("type in (md5, sha256)", {"md5", "sha256"}),
    ("type not in (url, md5, sha256)", {"ip", "domain"}),
    # value: equality compares with the normalized form of the literal
    ("value = 'hxxp://Evil[.]com'", {"evil"}),
    ("value = D41D8CD98F00B204E9800998ECF8427E", {"md5"}),
    ("value != bad.example", but("domain")),
    ("value in (198.51.100.7, 'bad[.]example')", {"ip", "domain"}),
    ("value not in (198.51.100.7)", but("ip")),
    ("value contains example", {"login", "domain"}),
    ("value contains 'EVIL[.]com'", {"evil"}),
    ("value startswith 'http://'", {"evil", "login"}),
    ("value endswith .example", {"domain"}),
    ("value matches '^[0-9a-f]{32}$'", {"md5"}),
    (r'value matches "^http://[a-z]+\.com/$"', {"evil"}),
    # reputation
    ("reputation = 7", {"md5"}),
    ("reputation != 5", but("ip")),
    ("reputation < 5", {"login", "domain"}),
    ("reputation <= 5", {"login", "domain", "ip"}),
    ("reputation > 7", {"evil", "sha256"}),
    ("reputation >= 7", {"evil", "sha256", "md5"}),
    ("reputation in (1, 10)", {"domain", "sha256"}),
    ("reputation not in (1, 10)", but("domain", "sha256")),
    # severity, by rank: unknown < low < medium < high < critical
    ("severity = low", {"login", "domain"}),
    ("severity != low", but("login", "domain")),
    ("severity >= high", {"evil", "md5"}),
    ("severity > Medium", {"evil", "md5"}),
    ("severity < medium", {"login", "domain", "ip"}),
    ("severity <= unknown", {"ip"}),
    ("severity in (medium, critical)", {"sha256", "md5"}),
    ("severity not in (low, unknown)", {"evil", "md5", "sha256"}),
    ("severity > critical", set()),
    # tags: exact, case-sensitive
    ("tags contains phishing", {"evil", "domain"}),
    ("tags = Phishing", {"sha256"}),
    ("tags != malware", but("md5", "sha256")),
    ("tags in (apt1, scanner)", {"evil", "ip"}),
    ("tags not in (malware, phishing)", {"login", "ip"}),
    # source: the name of a configuration with a sighting of the indicator
    ("source = alpha", {"evil", "md5"}),
    ("source != alpha", but("evil", "md5")),
    ("source in (beta, 'no such source')", {"login", "md5"}),
    ("source not in (alpha, beta)", {"sha256", "ip", "domain"}),
    ("source contains ALPHA", {"evil", "md5", "ip"}),
    ("source startswith alpha-", {"ip"}),
    ("source endswith ta", {"login", "md5"}),
    ("source matches '^al'", {"evil", "md5", "ip"}),
    # times: relative to NOW, or ISO dates (UTC unless an offset is given)
    ("first_seen > -7d", {"login", "domain"}),
    ("first_seen >= -10d", {"login", "domain", "sha256"}),
    ("first_seen < -4w", {"evil", "md5"}),
    ("first_seen <= 2026-01-30", {"md5"}),
    ("last_seen > -1h", {"ip"}),
    ("last_seen >= -12h", {"ip", "login"}),
    ("last_seen > -45m", {"ip"}),
    ("last_seen < '2026-02-20T00:00:00Z'", {"md5", "sha256"}),
    ("last_seen > 2026-02-28T13:00:00+02:00", {"evil", "login", "ip", "domain"}),
    # expires_at: empty means never, which is later than any moment and earlier than none
    ("expires_at < +7d", {"md5", "domain"}),
    ("expires_at > +7d", {"evil", "ip", "login", "sha256"}),
    ("expires_at >= 2026-03-11T12:00:00", {"evil", "ip", "login", "sha256"}),
    ("expires_at <= 2026-03-01T12:00:00Z", {"md5"}),
    # active
    ("active = true", but("md5")),
    ("active = FALSE", {"md5"}),
    ("active != true", {"md5"}),
    # comments: equality exact, the other operators ignore case except matches
    ("comments = 'port scan'", {"ip"}),
    ("comments != ''", {"evil", "md5", "ip", "domain"}),
    ("comments in ('empty file', 'port scan')", {"md5", "ip"}),
    ("comments not in ('')", {"evil", "md5", "ip", "domain"}),
    ("comments contains campaign", {"evil"}),
    ("comments startswith typo", {"domain"}),
    ("comments endswith FILE", {"md5"}),
    ("comments matches 'scan$'", {"ip"}),
    ("comments matches '^seen'", set()),
    # precedence: not > and > or; parentheses; keywords in any case
    ("type = url or type = md5 and reputation > 7", {"evil", "login"}),
    ("(type = url or type = md5) and reputation > 7", {"evil"}),
    ("not type = url and reputation >= 5", {"md5", "sha256", "ip"}),
    ("not (type = url and reputation >= 5)", but("evil")),
    ("not not type = md5", {"md5"}),
    ("type = url and not tags contains phishing", {"login"}),
    ("type = domain or type = ipv4 or severity = critical", {"domain", "ip", "md5"}),
    ("TYPE = url AND Reputation > 5 OR Not active = true", {"evil", "md5"}),
    ("((type = md5))", {"md5"}),
    # empty rules, comments and newlines
    ("", ALL),
    ("  \n  # only a comment\n", ALL),
    ("type = url  # the web\n  and reputation > 5 # worth sharing\n", {"evil"}),
    ("type in (\n  md5, # hashes\n  sha256\n)", {"md5", "sha256"}),
]


class LanguageSelectionTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        make_store(STORE)
        cls.labels = {value: label for label, (_, value, *_) in STORE.items()}

    def selected(self, queryset) -> set[str]:
        values = list(queryset.values_list("value", flat=True))
        self.assertEqual(len(values), len(set(values)), "an indicator was selected twice")
        return {self.labels[value] for value in values}

    def test_each_expression_selects_its_indicators_and_its_negation_the_rest(self):
        for text, expected in VALID:
            with self.subTest(text):
                q = compile_rule(text, now=NOW)
                self.assertEqual(self.selected(Indicator.objects.filter(q)), expected)
                if q:  # Q() is "no condition", which Django neither excludes nor negates
                    self.assertEqual(self.selected(Indicator.objects.exclude(q)), ALL - expected)
                    self.assertEqual(self.selected(Indicator.objects.filter(~q)), ALL - expected)

    def test_compiled_rules_combine_with_and_and_or(self):
        tags, source = compile_rule("tags contains phishing", now=NOW), compile_rule("source = alpha", now=NOW)
        self.assertEqual(self.selected(Indicator.objects.filter(tags & source)), {"evil"})
        self.assertEqual(self.selected(Indicator.objects.filter(tags | source)), {"evil", "domain", "md5"})
        self.assertEqual(self.selected(Indicator.objects.filter(tags & ~source)), {"domain"})
        self.assertEqual(self.selected(Indicator.objects.filter(Q(type="url") & ~tags)), {"login"})
        # Inside a subquery, where the table has another alias.
        inner = Indicator.objects.filter(tags & ~source).values("pk")
        self.assertEqual(self.selected(Indicator.objects.filter(pk__in=inner)), {"domain"})

    def test_relative_times_count_back_from_now(self):
        def last_day(now=None):
            return self.selected(Indicator.objects.filter(compile_rule("last_seen > -1d", now=now)))

        self.assertEqual(last_day(NOW), {"login", "ip"})
        self.assertEqual(last_day(NOW + DAY), set())
        with mock.patch("django.utils.timezone.now", return_value=NOW - DAY):
            self.assertEqual(last_day(), {"evil", "login", "ip", "domain"})

    def test_every_unit_of_relative_time(self):
        for text, hours in [("-30m", 0.5), ("-12h", 12), ("-7d", 168), ("-2w", 336), ("+1d", -24)]:
            with self.subTest(text):
                (moment,) = parse(f"first_seen > {text}").values
                self.assertEqual(moment, -timedelta(hours=hours))


class ParseTreeTests(TestCase):
    def test_not_binds_tighter_than_and_tighter_than_or(self):
        tree = parse("not type = url and reputation > 5 or active = true")
        self.assertIsInstance(tree, Or)
        first, second = tree.operands
        self.assertIsInstance(first, And)
        self.assertIsInstance(first.operands[0], Not)
        self.assertEqual(second, Comparison("active", "=", (True,), 1, 38))

    def test_values_are_typed_and_strings_unescaped(self):
        self.assertEqual(parse("reputation in (7, 8)").values, (7, 8))
        self.assertEqual(parse("severity = HIGH").values, ("high",))
        self.assertEqual(parse("first_seen > 2026-01-31").values, (datetime(2026, 1, 31, tzinfo=UTC),))
        self.assertEqual(parse(r"comments = 'it\'s \"a\" \\ \d'").values, ("it's \"a\" \\ \\d",))
        self.assertEqual(parse('comments = "say \\"hi\\""').values, ('say "hi"',))

    def test_an_empty_rule_is_no_tree_and_selects_everything(self):
        self.assertIsNone(parse(" # nothing\n"))
        self.assertEqual(compile_rule("\n\t "), Q())
        self.assertIsNone(validate(""))

    def test_a_multi_line_comparison_reports_its_own_position(self):
        tree = parse("type = url\n  and\n    reputation > 5")
        self.assertEqual((tree.operands[1].line, tree.operands[1].col), (3, 5))


ERRORS = [
    ("reputaton >= 7", "line 1, col 1: unknown field 'reputaton' (did you mean 'reputation'?)"),
    ("type = sha1 and  reputaton >= 7", "line 1, col 18: unknown field 'reputaton' (did you mean 'reputation'?)"),
    ("colour = red", "line 1, col 1: unknown field 'colour' (one of type, value, reputation, severity, tags, "
                     "source, first_seen, last_seen, expires_at, active, comments)"),
    ("type == url", "line 1, col 6: unknown operator '==' (did you mean '='?)"),
    ("reputation => 7", "line 1, col 12: unknown operator '=>' (did you mean '>='?)"),
    ("tags contain x", "line 1, col 6: unknown operator 'contain' (did you mean 'contains'?)"),
    ("type like url", "line 1, col 6: unknown operator 'like' (one of =, !=, <, <=, >, >=, in, not in, "
                      "contains, startswith, endswith, matches)"),
    ("type not url", "line 1, col 10: expected 'in' after 'not', found 'url'"),
    ("type", "line 1, col 5: expected an operator after 'type', found the end of the rule"),
    ("type = urll", "line 1, col 8: unknown type 'urll' (did you mean 'url'?)"),
    ("type in (md5, sha265)", "line 1, col 15: unknown type 'sha265' (did you mean 'sha256'?)"),
    ("type = file", "line 1, col 8: unknown type 'file' (one of url, domain, hostname, ipv4, ipv6, cidr, md5, "
                    "sha1, sha256, email)"),
    ("severity >= hihg", "line 1, col 13: unknown severity 'hihg' (did you mean 'high'?)"),
    ("reputation = 11", "line 1, col 14: reputation must be an integer from 1 to 10, not '11'"),
    ("reputation > 0", "line 1, col 14: reputation must be an integer from 1 to 10, not '0'"),
    ("reputation >= 7.5", "line 1, col 15: reputation must be an integer from 1 to 10, not '7.5'"),
    ("value > 5", "line 1, col 7: operator '>' cannot be used with value "
                  "(use =, !=, in, not in, contains, startswith, endswith, matches)"),
    ("comments <= 'a'", "line 1, col 10: operator '<=' cannot be used with comments "
                        "(use =, !=, in, not in, contains, startswith, endswith, matches)"),
    ("tags startswith x", "line 1, col 6: operator 'startswith' cannot be used with tags "
                          "(use =, !=, in, not in, contains)"),
    ("type contains u", "line 1, col 6: operator 'contains' cannot be used with type (use =, !=, in, not in)"),
    ("active > false", "line 1, col 8: operator '>' cannot be used with active (use =, !=)"),
    ("active = yes", "line 1, col 10: active is true or false, not 'yes'"),
    ("first_seen = -7d", "line 1, col 12: operator '=' cannot be used with first_seen (use <, <=, >, >=)"),
    ("first_seen > yesterday", "line 1, col 14: expected a date (2026-01-31T10:00:00Z) or a relative time "
                               "(-7d), not 'yesterday'"),
    ("last_seen < 2026-02-30", "line 1, col 13: '2026-02-30' is not a valid date (day is out of range for month)"),
    ('value = "abc', "line 1, col 9: unterminated string"),
    ("comments = 'it\\'s", "line 1, col 12: unterminated string"),
    ("(type = url or type = md5", "line 1, col 1: '(' is never closed"),
    ("type = url and (reputation > 5", "line 1, col 16: '(' is never closed"),
    ("type in (md5, sha1", "line 1, col 9: '(' is never closed"),
    ("(type = url reputation > 5)", "line 1, col 13: expected 'and', 'or' or ')', found 'reputation'"),
    ("type in (md5 sha1)", "line 1, col 14: expected ',' or ')', found 'sha1'"),
    ("type = url foo", "line 1, col 12: expected 'and', 'or' or the end of the rule, found 'foo'"),
    ("type = url)", "line 1, col 11: unmatched ')'"),
    ("value matches '(abc'", "line 1, col 15: invalid regular expression: missing ), unterminated subpattern "
                             "at position 0"),
    ("type in ()", "line 1, col 9: empty list: 'in' needs at least one value"),
    ("type not in ()", "line 1, col 13: empty list: 'not in' needs at least one value"),
    ("type in (md5, )", "line 1, col 15: expected a value after ',', found ')'"),
    ("type in md5", "line 1, col 9: expected '(' after 'in', found 'md5'"),
    ("type =", "line 1, col 7: expected a value after '=', found the end of the rule"),
    ("type = url and", "line 1, col 15: expected a field name, found the end of the rule"),
    ("and type = url", "line 1, col 1: expected a field name, found 'and'"),
    ("'type' = url", "line 1, col 1: expected a field name, found ''type''"),
    ("type = url\n  and reputation >= 5\n  and sevrity = high",
     "line 3, col 7: unknown field 'sevrity' (did you mean 'severity'?)"),
    ("# hashes\ntype in (md5,\n\tsha256, sha2)", "line 3, col 10: unknown type 'sha2' (did you mean 'sha256'?)"),
    ("comments = 'two\nlines' and typ = url", "line 2, col 12: unknown field 'typ' (did you mean 'type'?)"),
    ("type = url\n\n  or (", "line 3, col 7: expected a field name, found the end of the rule"),
]


class LanguageErrorTests(TestCase):
    def test_each_error_names_what_and_where(self):
        for text, message in ERRORS:
            with self.subTest(text), self.assertRaises(RuleError) as raised:
                validate(text)
            self.assertEqual(str(raised.exception), message)

    def test_compile_rule_raises_the_same_errors(self):
        with self.assertRaisesRegex(RuleError, "unknown type 'urll'"):
            compile_rule("type = urll")

    def test_the_error_carries_its_parts(self):
        with self.assertRaises(RuleError) as raised:
            parse("type = url and\n   reputaton >= 7")
        error = raised.exception
        self.assertEqual((error.line, error.col), (2, 4))
        self.assertEqual(error.message, "unknown field 'reputaton' (did you mean 'reputation'?)")
        self.assertIsInstance(error, ValueError)
