"""BusinessRule: validation on the right field, the selection, the seed rules, and the admin form."""

from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import TestCase
from django.urls import reverse

from exchange.models import Indicator
from rules.models import BusinessRule

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
OTHER_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# The two seed rules: every URL but one, and the MD5 and SHA-256 hashes but two.
ALL_URLS_BUT_ONE = {"expression": "type = url", "exclusions": "http://internal.example/status\n"}
HASHES_BUT_TWO = {
    "expression": "type in (md5, sha256)",
    "exclusions": f"# hashes our partners asked us not to share\n1donotsharethishash23\n{SHA256.upper()}\n",
}

STORE = [
    ("url", "http://internal.example/status"),
    ("url", "http://evil.example/login"),
    ("url", "http://evil.example/status"),
    ("md5", "d41d8cd98f00b204e9800998ecf8427e"),
    ("md5", "1donotsharethishash23"),
    ("sha256", SHA256),
    ("sha256", OTHER_SHA256),
    ("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    ("domain", "internal.example"),
]


def make_store() -> None:
    for type_, value in STORE:
        Indicator.objects.create(type=type_, value=value, first_seen=NOW - timedelta(days=3), last_seen=NOW)


def selected(rule: BusinessRule, queryset=None) -> set[str]:
    return set(rule.select(queryset, now=NOW).values_list("value", flat=True))


class CleanTests(TestCase):
    def errors(self, **fields) -> dict[str, list[str]]:
        with self.assertRaises(ValidationError) as raised:
            BusinessRule(name="rule", **fields).full_clean()
        return raised.exception.message_dict

    def test_a_bad_expression_is_reported_on_the_expression(self):
        self.assertEqual(self.errors(expression="type = url and\n  reputaton > 5"),
                         {"expression": ["line 2, col 3: unknown field 'reputaton' (did you mean 'reputation'?)"]})

    def test_a_bad_exclusion_is_reported_on_the_exclusions(self):
        self.assertEqual(self.errors(exclusions="*.example.com\n10.0.0.0/33"),
                         {"exclusions": ["line 2, col 1: '10.0.0.0/33' is not a CIDR block (address/prefix length)"]})

    def test_both_fields_are_checked_at_once(self):
        self.assertEqual(set(self.errors(expression="type = urll", exclusions="10.0.0.1/8")),
                         {"expression", "exclusions"})

    def test_a_valid_rule_and_an_empty_one_pass(self):
        BusinessRule(name="hashes", **HASHES_BUT_TWO).full_clean()
        BusinessRule(name="everything").full_clean()


class SelectTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        make_store()

    def test_all_urls_except_one(self):
        rule = BusinessRule.objects.create(name="All URLs except one", **ALL_URLS_BUT_ONE)
        self.assertEqual(selected(rule), {"http://evil.example/login", "http://evil.example/status"})

    def test_md5_and_sha256_except_two_hashes(self):
        rule = BusinessRule.objects.create(name="MD5 and SHA-256", **HASHES_BUT_TWO)
        self.assertEqual(selected(rule), {"d41d8cd98f00b204e9800998ecf8427e", OTHER_SHA256})

    def test_an_empty_rule_selects_everything_but_its_exclusions(self):
        rule = BusinessRule(name="everything", exclusions="*.example/*\ninternal.example")
        self.assertEqual(selected(rule), {value for type_, value in STORE if type_ not in ("url", "domain")})
        self.assertEqual(len(selected(BusinessRule(name="all"))), len(STORE))

    def test_select_narrows_the_given_queryset(self):
        rule = BusinessRule(name="urls", **ALL_URLS_BUT_ONE)
        Indicator.objects.filter(value="http://evil.example/login").update(active=False)
        self.assertEqual(selected(rule, Indicator.objects.active()), {"http://evil.example/status"})

    def test_relative_times_count_from_now(self):
        rule = BusinessRule(name="recent", expression="type = sha1 and first_seen > -7d")
        self.assertEqual(selected(rule), {"da39a3ee5e6b4b0d3255bfef95601890afd80709"})
        self.assertEqual(set(rule.select(now=NOW + timedelta(days=7))), set())

    def test_q_and_excluded_are_the_two_halves(self):
        rule = BusinessRule(name="hashes", **HASHES_BUT_TWO)
        self.assertEqual(Indicator.objects.filter(rule.q(NOW)).count(), 4)
        self.assertEqual([entry.text for entry in rule.excluded().entries], ["1donotsharethishash23", SHA256])
        self.assertEqual(str(rule), "hashes")


class AdminTests(TestCase):
    def setUp(self):
        user = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
        self.client.force_login(user)

    def test_errors_show_on_their_fields_and_nothing_is_saved(self):
        data = {"name": "bad", "description": "", "expression": "type = urll", "exclusions": "10.0.0.0/33"}
        response = self.client.post(reverse("admin:rules_businessrule_add"), data)
        self.assertEqual(response.status_code, 200)
        form = response.context["adminform"].form
        self.assertEqual(form.errors["expression"], ["line 1, col 8: unknown type 'urll' (did you mean 'url'?)"])
        self.assertIn("line 1, col 1: '10.0.0.0/33'", form.errors["exclusions"][0])
        self.assertFalse(BusinessRule.objects.exists())

    def test_a_valid_rule_is_saved_and_listed_with_its_summary(self):
        data = {"name": "hashes", "description": "seed", **HASHES_BUT_TWO}
        response = self.client.post(reverse("admin:rules_businessrule_add"), data)
        self.assertEqual(response.status_code, 302)
        page = self.client.get(reverse("admin:rules_businessrule_changelist")).content.decode()
        self.assertIn("type in (md5, sha256)", page)
        self.assertIn('<td class="field-exclusion_count">2</td>', page)

    def test_the_change_form_uses_monospace_text_areas(self):
        rule = BusinessRule.objects.create(name="urls", **ALL_URLS_BUT_ONE)
        page = self.client.get(reverse("admin:rules_businessrule_change", args=[rule.pk])).content.decode()
        self.assertEqual(page.count("font-family: monospace"), 2)
