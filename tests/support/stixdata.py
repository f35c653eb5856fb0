"""Generated STIX 2.1 content for TAXII tests: indicators of every kind a feed carries (each
indicator type, compound patterns, ``IN`` sets, escapes, revoked, expired, broken, other
pattern languages, comparisons that name no value) and objects that are not indicators.

``corpus(count)`` returns the objects with the outcome each one should have, worked out
here from what was generated (not by parsing the patterns back), so a test can compare the
store with it: ``kept`` (type, value) pairs as the store normalizes them, ``rejected`` how
many records are refused, ``withdrawn`` the values of revoked or expired indicators.
"""

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

NAMESPACE = uuid.UUID("0b7e5d64-1c2f-4a57-9e3a-6d1f0c9b8a72")
KINDS = 26


def stix_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Corpus:
    objects: list[dict] = field(default_factory=list)
    kept: set[tuple[str, str]] = field(default_factory=set)
    rejected: int = 0
    withdrawn: set[tuple[str, str]] = field(default_factory=set)
    compound: set[tuple[str, str]] = field(default_factory=set)  # kept values that came from compound patterns
    reputations: dict[tuple[str, str], int] = field(default_factory=dict)
    records: list[int] = field(default_factory=list)  # how many records each object gives, in order

    def indicator_count(self) -> int:
        return sum(1 for obj in self.objects if obj["type"] == "indicator")


def _id(kind: str, number: int) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, f'{kind}:{number}')}"


def _hex(number: int, length: int) -> str:
    return uuid.uuid5(NAMESPACE, f"hash:{number}").hex.ljust(length, "0")[:length] if length <= 32 else \
        (uuid.uuid5(NAMESPACE, f"hash:{number}").hex * 2)[:length]


def indicator(number: int, pattern: str, now: datetime, *, pattern_type: str = "stix", **extra) -> dict:
    return {
        "type": "indicator", "spec_version": "2.1", "id": _id("indicator", number),
        "created": stix_time(now - timedelta(days=30, minutes=number)),
        "modified": stix_time(now - timedelta(days=1) + timedelta(seconds=number)),
        "name": f"indicator {number}", "pattern": pattern, "pattern_type": pattern_type,
        "valid_from": stix_time(now - timedelta(days=30)), **extra,
    }


def corpus(count: int, now: datetime | None = None, start: int = 0) -> Corpus:
    """``count`` objects, kinds in turn, numbered from ``start`` (numbers make values unique)."""
    now = now or datetime.now(UTC)
    result = Corpus()
    for number in range(start, start + count):
        before = len(result.kept) + result.rejected
        _add(result, number, number % KINDS, now)
        result.records.append(len(result.kept) + result.rejected - before)
    return result


def _keep(result: Corpus, obj: dict, pairs: list[tuple[str, str]], *, compound: bool = False) -> None:
    result.objects.append(obj)
    result.kept.update(pairs)
    if compound:
        result.compound.update(pairs)
    for pair in pairs:
        # STIX confidence 0-100 in tenths, rounded up, at least 1; none given: the source's default
        result.reputations[pair] = max(1, math.ceil(obj["confidence"] / 10)) if "confidence" in obj else None


def _add(result: Corpus, n: int, kind: int, now: datetime) -> None:
    url, domain, ip = f"http://bad{n}.example.com/login", f"bad{n}.example.net", f"198.51.{n // 250}.{n % 250 + 1}"
    md5, sha1, sha256 = _hex(n, 32), _hex(n, 40), _hex(n, 64)
    labels = {"labels": ["malicious-activity", f"campaign-{n % 3}"], "confidence": (n * 7) % 101,
              "description": f"Seen in campaign {n % 3}"}
    if kind == 0:
        _keep(result, indicator(n, f"[url:value = '{url}']", now, **labels), [("url", url)])
    elif kind == 1:
        _keep(result, indicator(n, f"[domain-name:value = '{domain}']", now, **labels), [("domain", domain)])
    elif kind == 2:
        _keep(result, indicator(n, f"[ipv4-addr:value = '{ip}']", now), [("ipv4", ip)])
    elif kind == 3:
        cidr = f"10.{n % 250}.0.0/16"
        _keep(result, indicator(n, f"[ipv4-addr:value = '{cidr}']", now, **labels), [("cidr", cidr)])
    elif kind == 4:
        ipv6 = f"2001:db8::{n:x}"
        _keep(result, indicator(n, f"[ipv6-addr:value = '{ipv6}']", now), [("ipv6", ipv6)])
    elif kind == 5:
        email = f"phisher{n}@bad.example.org"
        _keep(result, indicator(n, f"[email-addr:value = '{email}']", now, **labels), [("email", email)])
    elif kind == 6:
        _keep(result, indicator(n, f"[file:hashes.MD5 = '{md5.upper()}']", now), [("md5", md5)])
    elif kind == 7:
        _keep(result, indicator(n, f"[file:hashes.'SHA-1' = '{sha1}']", now, **labels), [("sha1", sha1)])
    elif kind == 8:
        _keep(result, indicator(n, f"[file:hashes.'SHA-256' = '{sha256}']", now, **labels), [("sha256", sha256)])
    elif kind == 9:  # compound: two observations, and a hash with a file name as context
        pattern = (f"([url:value = '{url}'] OR [domain-name:value = '{domain}']) FOLLOWEDBY "
                   f"[file:hashes.'SHA-256' = '{sha256}' AND file:name = 'invoice{n}.exe'] WITHIN 600 SECONDS")
        _keep(result, indicator(n, pattern, now, **labels), [("url", url), ("domain", domain), ("sha256", sha256)],
              compound=True)
    elif kind == 10:
        pattern = f"[domain-name:value IN ('a{domain}', 'b{domain}')]"
        _keep(result, indicator(n, pattern, now, **labels), [("domain", f"a{domain}"), ("domain", f"b{domain}")])
    elif kind == 11:  # the STIX 2.0 spelling of the hash name
        _keep(result, indicator(n, f"[file:hashes.SHA256 = '{sha256}']", now), [("sha256", sha256)])
    elif kind == 12:
        result.objects.append(indicator(n, f"[url:value = '{url}']", now, revoked=True, **labels))
        result.withdrawn.add(("url", url))
    elif kind == 13:
        expired = stix_time(now - timedelta(days=2))
        result.objects.append(indicator(n, f"[domain-name:value = '{domain}']", now, valid_until=expired))
        result.withdrawn.add(("domain", domain))
    elif kind == 14:
        result.objects.append(indicator(n, f"[url:value = '{url}'", now))  # no closing bracket
        result.rejected += 1
    elif kind == 15:
        result.objects.append(indicator(n, "title: Suspicious PowerShell\ndetection: {condition: selection}", now,
                                        pattern_type="sigma"))
        result.rejected += 1
    elif kind == 16:
        result.objects.append(indicator(n, "rule bad { condition: true }", now, pattern_type="yara"))
        result.rejected += 1
    elif kind == 17:  # a LIKE comparison names no value: refused, while its partner is kept
        pattern = f"[domain-name:value LIKE '%.{domain}'] OR [ipv4-addr:value = '{ip}']"
        _keep(result, indicator(n, pattern, now, **labels), [("ipv4", ip)], compound=True)
        result.rejected += 1
    elif kind == 18:
        result.objects.append({"type": "malware", "spec_version": "2.1", "id": _id("malware", n),
                               "created": stix_time(now), "modified": stix_time(now), "name": f"Trojan {n}",
                               "is_family": False})
    elif kind == 19:
        result.objects.append({"type": "relationship", "spec_version": "2.1", "id": _id("relationship", n),
                               "created": stix_time(now), "modified": stix_time(now), "relationship_type": "indicates",
                               "source_ref": _id("indicator", n - 19), "target_ref": _id("malware", n - 1)})
    elif kind == 20:
        cidr = f"2001:db8:{n:x}::/48"
        _keep(result, indicator(n, f"[ipv6-addr:value = '{cidr}']", now, **labels), [("cidr", cidr)])
    elif kind == 21:  # a quote and a backslash, escaped in the pattern
        raw = f"http://bad{n}.example.com/it's\\here"
        escaped = raw.replace("\\", "\\\\").replace("'", "\\'")
        _keep(result, indicator(n, f"[url:value = '{escaped}']", now, **labels),
              [("url", f"http://bad{n}.example.com/it's%5Chere")])
    elif kind == 22:  # only context, nothing this system keeps
        result.objects.append(indicator(n, f"[file:name = 'dropper{n}.exe']", now))
        result.rejected += 1
    elif kind == 23:
        result.objects.append({"type": "identity", "spec_version": "2.1", "id": _id("identity", n),
                               "created": stix_time(now), "modified": stix_time(now), "name": f"Sharing group {n}",
                               "identity_class": "organization"})
    elif kind == 24:  # a negated comparison is refused
        result.objects.append(indicator(n, f"[email-addr:value != 'ceo{n}@good.example']", now))
        result.rejected += 1
    else:
        ipv4 = f"203.0.{n // 250}.{n % 250 + 1}"
        _keep(result, indicator(n, f"[ipv4-addr:value = '{ipv4}']", now, **labels), [("ipv4", ipv4)])
