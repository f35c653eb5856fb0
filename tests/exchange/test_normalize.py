"""exchange.normalize: refang, check and canonicalize each indicator type, detect a type, and say why a value fails."""

import ipaddress

from django.test import SimpleTestCase

from exchange.normalize import TYPES, Rejected, detect, normalize, normalize_any, refang

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
LONG_PATH = "http://example.com/" + "a" * 2029  # exactly 2048 characters: the longest URL kept

# (input, canonical form) per type.
ACCEPTED: dict[str, list[tuple[str, str]]] = {
    "md5": [
        (MD5, MD5),
        (MD5.upper(), MD5),
        (f"  {MD5}\n", MD5),
        ("\tD41D8cd98f00B204e9800998ecf8427E ", MD5),
    ],
    "sha1": [
        (SHA1, SHA1),
        (SHA1.upper(), SHA1),
        (f" {SHA1.upper()}\r\n", SHA1),
    ],
    "sha256": [
        (SHA256, SHA256),
        (SHA256.upper(), SHA256),
        (f"\t{SHA256} ", SHA256),
    ],
    "ipv4": [
        ("1.2.3.4", "1.2.3.4"),
        (" 10.0.0.1 \n", "10.0.0.1"),
        ("1[.]2[.]3[.]4", "1.2.3.4"),
        ("8.8.8[.]8", "8.8.8.8"),
        ("1(dot)2(dot)3(dot)4", "1.2.3.4"),
        ("192\\.168\\.0\\.1", "192.168.0.1"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
    ],
    "ipv6": [
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("FE80::1", "fe80::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001[:]db8[:][:]1", "2001:db8::1"),
        ("::1", "::1"),
        ("::", "::"),
        (" 2001:db8::1\t", "2001:db8::1"),
    ],
    "cidr": [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10[.]0[.]0[.]0/8", "10.0.0.0/8"),
        (" 192.168.1.0/24\t", "192.168.1.0/24"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("2001:DB8::/32", "2001:db8::/32"),
        ("2001:0db8:0000::/48", "2001:db8::/48"),
        ("::/0", "::/0"),
        ("10.0.0.0/255.0.0.0", "10.0.0.0/8"),  # a netmask reads as its prefix length
        ("10.0.0.0", "10.0.0.0/32"),  # a bare address is the block of one
        ("2001:db8::1", "2001:db8::1/128"),
    ],
    "domain": [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("  example.com\t", "example.com"),
        ("example[.]com", "example.com"),
        ("example [.] com", "example.com"),
        ("example(dot)com", "example.com"),
        ("example[dot]com", "example.com"),
        ("example{.}com", "example.com"),
        ("example\\.com", "example.com"),
        ("sub.example[.]co[.]uk", "sub.example.co.uk"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.Example.", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.EXAMPLE", "xn--bcher-kva.example"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ("straße.de", "xn--strae-oqa.de"),  # IDNA 2008: ß is kept, not mapped to "ss"
        ("example\u3002com", "example.com"),  # an ideographic full stop separates labels too
        ("my_site.example.com", "my_site.example.com"),  # real malicious names use underscores
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("my_site.bücher.example", "my_site.xn--bcher-kva.example"),
        ("a-b--c.example", "a-b--c.example"),
        ("123.example", "123.example"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
    ],
    "hostname": [
        ("www.example.com", "www.example.com"),
        ("WWW.Example.com", "www.example.com"),
        ("www[.]evil[.]com", "www.evil.com"),
        ("www.bücher.example.", "www.xn--bcher-kva.example"),
        ("mail_1.corp.example", "mail_1.corp.example"),
    ],
    "email": [
        ("user@example.com", "user@example.com"),
        ("User@Example.COM", "user@example.com"),
        ("user[at]example[.]com", "user@example.com"),
        ("user(at)example(dot)com", "user@example.com"),
        ("user [at] example [dot] com", "user@example.com"),
        ("user[@]example.com", "user@example.com"),
        ("mailto:User@Example.com", "user@example.com"),
        (" user@example.com. ", "user@example.com"),
        ("first.last+tag@bücher.example", "first.last+tag@xn--bcher-kva.example"),
        ("o'brien@example.com", "o'brien@example.com"),
        ("user@my_site.example.com", "user@my_site.example.com"),
        ("a" * 64 + "@example.com", "a" * 64 + "@example.com"),
    ],
    "url": [
        ("http://example.com/", "http://example.com/"),
        ("http://example.com", "http://example.com/"),
        ("HTTP://EXAMPLE.COM/Path?Q=1#frag", "http://example.com/Path?Q=1"),
        ("https://www.example.com/A/B", "https://www.example.com/A/B"),
        ("hxxp://evil[.]com/a", "http://evil.com/a"),
        ("hXXps://evil[.]com/a", "https://evil.com/a"),
        ("HXXP://EVIL[.]COM", "http://evil.com/"),
        ("hxxp[:]//evil[.]com/a", "http://evil.com/a"),
        ("hxxps[://]evil[.]com/a", "https://evil.com/a"),
        ("h**p://evil.com/", "http://evil.com/"),
        ("http://evil(dot)com/", "http://evil.com/"),
        ("fxp://files.example/x", "ftp://files.example/x"),
        ("http://example.com:80/", "http://example.com/"),
        ("https://example.com:443/x", "https://example.com/x"),
        ("ftp://example.com:21/x", "ftp://example.com/x"),
        ("ftps://example.com:990/", "ftps://example.com/"),
        ("https://example.com:8443/", "https://example.com:8443/"),
        ("http://example.com:443/", "http://example.com:443/"),
        ("example.com/path", "http://example.com/path"),
        ("example.com", "http://example.com/"),
        ("//example.com/x", "http://example.com/x"),
        ("example.com:8080/x", "http://example.com:8080/x"),
        ("1.2.3.4:8080/x", "http://1.2.3.4:8080/x"),
        ("hxxp://1[.]2[.]3[.]4/x", "http://1.2.3.4/x"),
        ("http://[2001:DB8:0:0::1]:8080/x", "http://[2001:db8::1]:8080/x"),
        ("http://[2001:db8::1]:80/", "http://[2001:db8::1]/"),
        ("[2001:db8::1]/x", "http://[2001:db8::1]/x"),
        ("http://bücher.example/straße?q=ü", "http://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%BC"),
        ("http://example.com/a b", "http://example.com/a%20b"),
        ("http://example.com/caf%C3%A9", "http://example.com/caf%C3%A9"),
        ("http://user:pass@Example.com/", "http://user:pass@example.com/"),
        ("http://example.com./", "http://example.com/"),
        ("http://example.com?x=1", "http://example.com/?x=1"),
        ("http://example.com/?", "http://example.com/"),
        ("http://example.com/?a=[1]&b=c d", "http://example.com/?a=[1]&b=c%20d"),
        ("  http://example.com/  ", "http://example.com/"),
        ("http://exa_mple.com/", "http://exa_mple.com/"),
        ("evil.com/login?next=http://x.com", "http://evil.com/login?next=http://x.com"),
        (LONG_PATH, LONG_PATH),
    ],
}

# (input, fragment of the reason) per type; each reason also starts with "<type>: ".
REJECTED: dict[str, list[tuple[str, str]]] = {
    "md5": [
        (MD5[:-1], f"{MD5[:-1]} is not an MD5 hash (32 hex digits, not 31)"),
        (MD5 + "0", f"{MD5}0 is not an MD5 hash (32 hex digits, not 33)"),
        (SHA1, f"{SHA1} is not an MD5 hash (32 hex digits, not 40)"),
        ("g" + MD5[1:], f"g{MD5[1:]} is not an MD5 hash (hex digits only)"),
        (f"{MD5[:8]} {MD5[8:]}", f"{MD5[:8]} {MD5[8:]} is not an MD5 hash (hex digits only)"),
        ("0x" + MD5, f"0x{MD5} is not an MD5 hash (hex digits only)"),
    ],
    "sha1": [
        (SHA1[:-1], f"{SHA1[:-1]} is not a SHA-1 hash (40 hex digits, not 39)"),
        (SHA256, f"{SHA256} is not a SHA-1 hash (40 hex digits, not 64)"),
        ("z" * 40, f"{'z' * 40} is not a SHA-1 hash (hex digits only)"),
    ],
    "sha256": [
        (SHA256[:-1], f"{SHA256[:-1]} is not a SHA-256 hash (64 hex digits, not 63)"),
        (MD5, f"{MD5} is not a SHA-256 hash (64 hex digits, not 32)"),
        (SHA256[:32] + "-" + SHA256[32:], "is not a SHA-256 hash (hex digits only)"),
    ],
    "ipv4": [
        ("999.1.1.1", "999.1.1.1 is not an IPv4 address"),
        ("256.0.0.1", "256.0.0.1 is not an IPv4 address"),
        ("01.2.3.4", "01.2.3.4 is not an IPv4 address"),  # leading zeros: octal to some parsers
        ("1.2.3", "1.2.3 is not an IPv4 address"),
        ("1.2.3.4.5", "1.2.3.4.5 is not an IPv4 address"),
        ("0x7f.0.0.1", "0x7f.0.0.1 is not an IPv4 address"),
        ("2130706433", "2130706433 is not an IPv4 address"),
        ("1.2.3.4:80", "1.2.3.4:80 is not an IPv4 address"),
        ("1.2.3.4/32", "1.2.3.4/32 is not an IPv4 address"),
        ("::1", "::1 is not an IPv4 address"),
        ("localhost", "localhost is not an IPv4 address"),
    ],
    "ipv6": [
        ("fe80::1%eth0", "fe80::1%eth0 has a zone index, which is local to one host"),
        ("[fe80::1%25eth0]", "[fe80::1%25eth0] has a zone index"),
        ("2001:db8::g", "2001:db8::g is not an IPv6 address"),
        ("2001:db8::1::2", "2001:db8::1::2 is not an IPv6 address"),
        ("2001:db8:1:2:3:4:5:6:7", "2001:db8:1:2:3:4:5:6:7 is not an IPv6 address"),
        ("2001:db8::/32", "2001:db8::/32 is not an IPv6 address"),
        ("[2001:db8::1", "[2001:db8::1 is not an IPv6 address"),
        ("1.2.3.4", "1.2.3.4 is not an IPv6 address"),
    ],
    "cidr": [
        ("10.0.0.1/8", "10.0.0.1/8 has host bits set (the block is 10.0.0.0/8)"),
        ("192.168.1.1/24", "192.168.1.1/24 has host bits set (the block is 192.168.1.0/24)"),
        ("2001:db8::1/32", "2001:db8::1/32 has host bits set (the block is 2001:db8::/32)"),
        ("10.0.0.0/33", "10.0.0.0/33 is not a CIDR block"),
        ("2001:db8::/129", "2001:db8::/129 is not a CIDR block"),
        ("999.0.0.0/8", "999.0.0.0/8 is not a CIDR block"),
        ("010.0.0.0/8", "010.0.0.0/8 is not a CIDR block"),
        ("10.0.0.0/", "10.0.0.0/ is not a CIDR block"),
        ("foo/8", "foo/8 is not a CIDR block"),
        ("fe80::%eth0/64", "fe80::%eth0/64 has a zone index, which is local to one host"),
    ],
    "domain": [
        ("localhost", "localhost is not a fully qualified name (it has no dot)"),
        ("bücher", "bücher is not a fully qualified name (it has no dot)"),
        ("*.example.com", "*.example.com is a wildcard, not a name"),
        ("*.bücher.example", "*.bücher.example is a wildcard, not a name"),
        ("a" * 64 + ".com", f"{'a' * 64}.com has a label longer than 63 characters"),
        ("ü" * 60 + ".com", "is not a valid internationalized name (Label too long)"),
        (".".join(["a" * 63] * 4) + ".com", "is longer than 253 characters"),
        ("example.123", "example.123 is an IP address or ends in a numeric label, not a name"),
        ("1.2.3.4", "1.2.3.4 is an IP address or ends in a numeric label, not a name"),
        ("-bad.example.com", "-bad.example.com has an invalid label '-bad'"),
        ("bad-.example.com", "bad-.example.com has an invalid label 'bad-'"),
        ("a..example.com", "a..example.com has an invalid label '(empty)'"),
        (".example.com", ".example.com has an invalid label '(empty)'"),
        ("exa!mple.com", "exa!mple.com has an invalid label 'exa!mple'"),
        ("ex ample.com", "ex ample.com has an invalid label 'ex ample'"),
        ("http://example.com", "http://example.com has an invalid label 'http://example'"),
        ("example.com:80", "example.com:80 has an invalid label 'com:80'"),
        ("user@example.com", "user@example.com has an invalid label 'user@example'"),
        ("\u2603.net", "\u2603.net is not a valid internationalized name"),
        ("-bücher.example", "-bücher.example is not a valid internationalized name"),
        (".", "domain: empty name"),
    ],
    "hostname": [
        ("server", "server is not a fully qualified name (it has no dot)"),
        ("*.evil.com", "*.evil.com is a wildcard, not a name"),
        ("www.-x.com", "www.-x.com has an invalid label '-x'"),
        ("www.example.123", "www.example.123 is an IP address or ends in a numeric label, not a name"),
    ],
    "email": [
        ("userexample.com", "userexample.com is not an email address (no local part and @)"),
        ("@example.com", "@example.com is not an email address (no local part and @)"),
        (".user@example.com", ".user@example.com has an invalid local part '.user'"),
        ("user.@example.com", "user.@example.com has an invalid local part 'user.'"),
        ("us..er@example.com", "us..er@example.com has an invalid local part 'us..er'"),
        ("us er@example.com", "us er@example.com has an invalid local part 'us er'"),
        ('"quoted"@example.com', '"quoted"@example.com has an invalid local part \'"quoted"\''),
        ("üser@example.com", "üser@example.com has an invalid local part 'üser'"),
        ("a@b@example.com", "a@b@example.com has an invalid local part 'a@b'"),
        ("a" * 65 + "@example.com", "has a local part longer than 64 characters"),
        ("user@", "user@ has an invalid domain (empty name)"),
        ("user@localhost", "user@localhost has an invalid domain (localhost is not a fully qualified name"),
        ("user@1.2.3.4", "user@1.2.3.4 has an invalid domain (1.2.3.4 is an IP address or ends in a numeric label"),
        ("user@[1.2.3.4]", "user@[1.2.3.4] has an invalid domain"),
        ("user@*.example.com", "user@*.example.com has an invalid domain (*.example.com is a wildcard, not a name)"),
        ("user@example..com", "user@example..com has an invalid domain (example..com has an invalid label '(empty)')"),
    ],
    "url": [
        ("javascript:alert(1)", "javascript:alert(1) has an unsupported scheme 'javascript' (http, https, ftp)"),
        ("JavaScript:alert(1)", "JavaScript:alert(1) has an unsupported scheme 'JavaScript'"),
        ("data:text/html,hi", "data:text/html,hi has an unsupported scheme 'data'"),
        ("file:///etc/passwd", "file:///etc/passwd has an unsupported scheme 'file'"),
        ("ldap://example.com/", "ldap://example.com/ has an unsupported scheme 'ldap'"),
        ("http:example.com", "http:example.com is not a URL (no // after http:)"),
        ("ftp:/example.com/", "ftp:/example.com/ is not a URL (no // after ftp:)"),
        ("http://", "http:// has no host"),
        ("http:///path", "http:///path has no host"),
        ("http://:80/", "http://:80/ has no host"),
        ("http://example.com:99999/", "http://example.com:99999/ is not a URL (Port out of range"),
        ("http://example.com:abc/", "http://example.com:abc/ is not a URL"),
        ("http://exa mple.com/", "http://exa mple.com/ has white space in its host"),
        ("http://localhost/", "http://localhost/ has an invalid host (localhost is not a fully qualified name"),
        ("http://*.example.com/", "http://*.example.com/ has an invalid host (*.example.com is a wildcard"),
        ("http://-bad.example/", "http://-bad.example/ has an invalid host (-bad.example has an invalid label '-bad')"),
        ("http://example.123/", "http://example.123/ has an invalid host (example.123 is an IP address or ends in"),
        ("http://999.1.1.1/x", "http://999.1.1.1/x has an invalid IPv4 host '999.1.1.1'"),
        ("http://01.2.3.4/x", "http://01.2.3.4/x has an invalid IPv4 host '01.2.3.4'"),
        ("http://[fe80::1%25eth0]/", "http://[fe80::1%25eth0]/ has a zone index in its IPv6 host"),
        (LONG_PATH + "a", "is longer than 2048 characters"),
        ("http://example.com/" + "ü" * 700, "is longer than 2048 characters once encoded"),
    ],
}

# Every type refuses an empty value and a NUL character the same way.
for _kind in TYPES:
    REJECTED[_kind] += [
        ("", f"{_kind}: empty value"),
        ("   \t\n", f"{_kind}: empty value"),
        ("1.2.3.4\x00", "'1.2.3.4\\x00' contains a NUL character"),
    ]

DETECTED: list[tuple[str, str]] = [
    (MD5, "md5"),
    (MD5.upper(), "md5"),
    (SHA1, "sha1"),
    (SHA256.upper(), "sha256"),
    ("1.2.3.4", "ipv4"),
    ("1[.]2[.]3[.]4", "ipv4"),
    ("999.1.1.1", "ipv4"),
    ("2001:db8::1", "ipv6"),
    ("[2001:db8::1]", "ipv6"),
    ("::1", "ipv6"),
    ("10.0.0.0/8", "cidr"),
    ("10.0.0.1/8", "cidr"),
    ("10.0.0.0/33", "cidr"),
    ("10.0.0.0/255.0.0.0", "cidr"),
    ("2001:db8::/32", "cidr"),
    ("user@example.com", "email"),
    ("user[at]example[.]com", "email"),
    ("mailto:user@example.com", "email"),
    ("http://example.com/", "url"),
    ("hxxp://evil[.]com", "url"),
    ("ftp://example.com/", "url"),
    ("http://user@example.com/", "url"),
    ("example.com/path", "url"),
    ("1.2.3.4/x", "url"),
    ("example.com", "domain"),
    ("www.example.com", "domain"),
    ("example[.]com", "domain"),
    ("bücher.example", "domain"),
]

UNDETECTED: list[tuple[str, str]] = [
    ("hello", "detect: hello is not a hash, IP address, CIDR block, email address, URL or domain"),
    ("hello world", "detect: hello world has white space inside"),
    ("a b.c", "detect: a b.c has white space inside"),
    ("deadbeef", "detect: deadbeef is not a hash"),
    ("cafe:babe", "detect: cafe:babe is not a hash"),
    ("javascript:alert(1)", "detect: javascript:alert(1) is not a hash"),
    ("", "detect: empty value"),
    ("  \n", "detect: empty value"),
]


class NormalizeTests(SimpleTestCase):
    def test_tables_cover_every_type(self):
        self.assertEqual(set(ACCEPTED), set(TYPES))
        self.assertEqual(set(REJECTED), set(TYPES))

    def test_accepted_values_take_their_canonical_form(self):
        for kind, rows in ACCEPTED.items():
            for value, expected in rows:
                with self.subTest(type=kind, value=value):
                    self.assertEqual(normalize(kind, value), expected)

    def test_normalizing_twice_changes_nothing(self):
        for kind, rows in ACCEPTED.items():
            for value, _ in rows:
                with self.subTest(type=kind, value=value):
                    once = normalize(kind, value)
                    self.assertEqual(normalize(kind, once), once)

    def test_rejected_values_say_which_type_and_what_is_wrong(self):
        for kind, rows in REJECTED.items():
            for value, reason in rows:
                with self.subTest(type=kind, value=value):
                    with self.assertRaises(Rejected) as caught:
                        normalize(kind, value)
                    self.assertTrue(str(caught.exception).startswith(f"{kind}: "), str(caught.exception))
                    self.assertIn(reason, str(caught.exception))

    def test_a_long_value_is_cut_short_in_the_reason(self):
        with self.assertRaises(Rejected) as caught:
            normalize("url", "http://example.com/" + "a" * 3000)
        reason = str(caught.exception)
        self.assertLess(len(reason), 200)
        self.assertRegex(reason, r"^url: http://example\.com/a+\.\.\. is longer than 2048 characters$")

    def test_rejected_is_a_value_error(self):
        with self.assertRaises(ValueError):
            normalize("ipv4", "999.1.1.1")

    def test_unknown_type(self):
        with self.assertRaisesMessage(Rejected, "MD5: not an indicator type (one of url, domain, hostname, ipv4"):
            normalize("MD5", MD5)

    def test_a_value_that_is_not_a_string_is_read_as_its_text(self):
        self.assertEqual(normalize("ipv4", ipaddress.ip_address("10.0.0.1")), "10.0.0.1")
        self.assertEqual(normalize("cidr", ipaddress.ip_network("2001:db8::/32")), "2001:db8::/32")

    def test_domain_and_hostname_share_one_canonical_form(self):
        for value, expected in ACCEPTED["hostname"]:
            with self.subTest(value=value):
                self.assertEqual(normalize("domain", value), expected)


class RefangTests(SimpleTestCase):
    def test_defanged_spellings_are_undone(self):
        rows = [
            ("hxxp://evil[.]com", "http://evil.com"),
            ("hXXps://evil[.]com", "https://evil.com"),
            ("h**ps://evil.com", "https://evil.com"),
            ("hxxp[:]//evil.com", "http://evil.com"),
            ("hxxps[://]evil.com", "https://evil.com"),
            ("fxp://evil.com", "ftp://evil.com"),
            ("evil(dot)com", "evil.com"),
            ("evil[DOT]com", "evil.com"),
            ("evil{.}com", "evil.com"),
            ("evil [.] com", "evil.com"),
            ("evil\\.com", "evil.com"),
            ("user[at]evil.com", "user@evil.com"),
            ("user(AT)evil.com", "user@evil.com"),
            ("user[@]evil.com", "user@evil.com"),
            ("http://evil.com[/]path", "http://evil.com/path"),
            ("  evil.com \n", "evil.com"),
        ]
        for value, expected in rows:
            with self.subTest(value=value):
                self.assertEqual(refang(value), expected)

    def test_brackets_that_are_not_defanging_are_kept(self):
        for value in ("http://example.com/wiki/Foo_(bar)", "[2001:db8::1]", "http://example.com/?a=[1]", "hxxpx"):
            with self.subTest(value=value):
                self.assertEqual(refang(value), value)


class DetectTests(SimpleTestCase):
    def test_each_type_is_told_from_its_shape(self):
        for value, kind in DETECTED:
            with self.subTest(value=value):
                self.assertEqual(detect(value), kind)

    def test_garbage_is_rejected(self):
        for value, reason in UNDETECTED:
            with self.subTest(value=value):
                with self.assertRaisesMessage(Rejected, reason):
                    detect(value)

    def test_every_canonical_value_is_detected_as_its_type(self):
        for kind, rows in ACCEPTED.items():
            for _, canonical in rows:
                with self.subTest(type=kind, value=canonical):
                    # A host name reads as a domain: only a feed can say it is a hostname.
                    self.assertEqual(detect(canonical), "domain" if kind == "hostname" else kind)


class NormalizeAnyTests(SimpleTestCase):
    def test_without_a_type_the_type_is_detected(self):
        rows = [
            (None, "HXXP://EVIL[.]COM/x", ("url", "http://evil.com/x")),
            ("", "1[.]2[.]3[.]4", ("ipv4", "1.2.3.4")),
            (None, MD5.upper(), ("md5", MD5)),
            (None, "2001:DB8::1", ("ipv6", "2001:db8::1")),
            (None, "10.0.0.0/8", ("cidr", "10.0.0.0/8")),
            (None, "User[at]Example[.]com", ("email", "user@example.com")),
            (None, "Bücher.example", ("domain", "xn--bcher-kva.example")),
        ]
        for type_, value, expected in rows:
            with self.subTest(type=type_, value=value):
                self.assertEqual(normalize_any(type_, value), expected)

    def test_a_given_type_wins_over_detection(self):
        self.assertEqual(normalize_any("hostname", "WWW.example.com"), ("hostname", "www.example.com"))
        self.assertEqual(normalize_any("cidr", "10.0.0.1"), ("cidr", "10.0.0.1/32"))
        with self.assertRaisesMessage(Rejected, "domain: 1.2.3.4 is an IP address or ends in a numeric label"):
            normalize_any("domain", "1.2.3.4")

    def test_a_detected_value_that_fails_its_check_gets_that_types_reason(self):
        rows = [
            ("999.1.1.1", "ipv4: 999.1.1.1 is not an IPv4 address"),
            ("10.0.0.0/33", "cidr: 10.0.0.0/33 is not a CIDR block"),
            ("10.0.0.1/8", "cidr: 10.0.0.1/8 has host bits set (the block is 10.0.0.0/8)"),
            ("user@localhost", "email: user@localhost has an invalid domain"),
            ("*.example.com", "domain: *.example.com is a wildcard, not a name"),
            ("hello", "detect: hello is not a hash"),
        ]
        for value, reason in rows:
            with self.subTest(value=value):
                with self.assertRaisesMessage(Rejected, reason):
                    normalize_any(None, value)


class DetectWhiteSpaceTests(SimpleTestCase):
    def test_a_value_with_white_space_inside_is_no_indicator(self):
        for value in ["1.10.16.0/20 ; SBL256894", "evil.example.com extra", "http://x.example/a b"]:
            with self.subTest(value=value), self.assertRaisesMessage(Rejected, "has white space inside"):
                detect(value)


class FastPathTests(SimpleTestCase):
    """The common-case shortcuts give exactly what the full parsers give."""

    def test_plain_urls_come_out_as_the_full_parser_makes_them(self):
        from exchange.normalize import _PLAIN_URL, _url_parsed

        extra = ["HTTP://EXAMPLE.COM:80", "https://a.example:443/x?", "http://a.example:0080/p", "ftp://f.example:21/",
                 "ftps://f.example:990/a", "http://a_b.example.com./%7Ex?q=[1]", "http://10.0.0.1:8080/a;b=c"]
        inputs = [refang(raw) for raw, _ in ACCEPTED["url"]] + extra
        self.assertGreater(sum(bool(_PLAIN_URL.fullmatch(value)) for value in inputs), 10)
        for value in inputs:
            with self.subTest(value=value):
                self.assertEqual(normalize("url", value), _url_parsed(value))

    def test_ascii_names_come_out_as_the_full_check_makes_them(self):
        from exchange.normalize import _host_name, _host_name_checked

        for raw, _ in ACCEPTED["domain"] + ACCEPTED["hostname"]:
            value = refang(raw)
            with self.subTest(value=value):
                self.assertEqual(_host_name("domain", value), _host_name_checked("domain", value))

    def test_canonical_ipv4_shortcut_agrees_with_ipaddress(self):
        import ipaddress as ip

        for value in ["0.0.0.0", "255.255.255.255", "10.1.2.3", "192.168.100.200", "1.2.3.04", "256.1.1.1"]:
            with self.subTest(value=value):
                try:
                    expected = str(ip.IPv4Address(value))
                except ValueError:
                    expected = None
                try:
                    got = normalize("ipv4", value)
                except Rejected:
                    got = None
                self.assertEqual(got, expected)


class MoreFastPathTests(SimpleTestCase):
    """The shortcuts added for speed agree with the general code on awkward inputs."""

    def test_the_bracket_shortcut_agrees_with_the_pattern(self):
        from exchange.normalize import _BRACKET_MEANING, _BRACKETED, _unbracket

        values = ["evil[.]com", "a[.]b[.]c", "[[.]]", "a[.]]b", "x[.](dot)y", "evil [.] com", "evil\t[.]com",
                  "evil\u00a0[.]com", "e[.]v(.)il", "w[.]x{.}y", "[.]", "a[.][at]b", "http://x[.]y/[1]"]
        for value in values:
            with self.subTest(value=value):
                expected = _BRACKETED.sub(lambda m: _BRACKET_MEANING[m.group(1).lower()], value)
                self.assertEqual(_unbracket(value), expected)

    def test_the_hash_shortcut_agrees_with_the_full_check(self):
        from exchange.normalize import _CHECKS

        hashes = [("md5", "D41D8CD98F00B204E9800998ECF8427E"), ("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
                  ("sha256", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")]
        for kind, value in hashes:
            with self.subTest(kind=kind):
                self.assertEqual(normalize(kind, value), _CHECKS[kind](value))
                self.assertEqual(normalize(kind, f"  {value} "), value.lower())  # padding takes the long way

    def test_plain_urls_with_odd_hosts_take_the_long_way_to_the_same_answer(self):
        from exchange.normalize import _url_parsed

        long_label = "a" * 64
        for value in ["http://10.0.0.1./x", "http://10.0.0.1/x", "http://999.1.1.1/", "http://a.example.1/",
                      f"http://{long_label}.example/", "http://" + "a." * 130 + "example/", "http://-a.example/",
                      "http://a..example/", "http://exa\u212aple.com/", "http://example.com/\u212a"]:
            with self.subTest(value=value):
                try:
                    expected = _url_parsed(value)
                except Rejected as exc:
                    with self.assertRaisesMessage(Rejected, str(exc)):
                        normalize("url", value)
                else:
                    self.assertEqual(normalize("url", value), expected)
