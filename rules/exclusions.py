"""A rule's exclusion list: values never selected, whatever the expression says.

One entry per line; blank lines and lines starting with ``#`` are ignored. An entry is

- a CIDR block (``10.0.0.0/8``, ``2001:db8::/32``): ipv4 and ipv6 indicators inside it, and cidr
  indicators that lie within it;
- a wildcard, any entry with ``*`` (``*.example.com``, ``http://bad.example/*``): values the pattern
  matches whole, ``*`` standing for any run of characters, letter case ignored;
- anything else, an exact value, in its normalized form when it has one (an upper-case hash, a
  defanged URL) and as written otherwise (``1donotsharethishash23``).
"""

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import reduce
from operator import or_

from django.db.models import Q

from exchange.normalize import Rejected, detect, normalize, refang
from rules.language import RuleError
from rules.sql import InNetwork, in_network


@dataclass(frozen=True)
class Entry:
    """One line of the list: ``kind`` is "exact", "wildcard" or "cidr"; ``text`` its canonical form."""

    kind: str
    text: str
    line: int

    def __str__(self) -> str:
        return self.text


def entry_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, entry)`` for the lines that hold an entry."""
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if entry and not entry.startswith("#"):
            yield number, entry


def _network(text: str, line: int) -> str:
    try:
        return ipaddress.ip_network(text).compressed
    except ValueError:
        pass
    try:
        block = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise RuleError(f"'{text}' is not a CIDR block (address/prefix length)", line) from None
    raise RuleError(f"'{text}' has host bits set (the block is {block.compressed})", line)


def _entry(text: str, line: int) -> Entry:
    if "*" in text:
        return Entry("wildcard", re.sub(r"\*+", "*", refang(text)), line)
    try:
        kind = detect(text)
    except Rejected:
        return Entry("exact", text, line)
    if kind == "cidr":  # also what looks like a block but is not one ("10.0.0.0/33"): an error
        return Entry("cidr", _network(refang(text), line), line)
    try:
        return Entry("exact", normalize(kind, text), line)
    except Rejected:
        return Entry("exact", text, line)


def parse_exclusions(text: str) -> "Exclusions":
    """The entries of an exclusion list; :class:`RuleError` (line, col 1) for a malformed block."""
    return Exclusions(_entry(entry, number) for number, entry in entry_lines(text))


def _wildcard_q(pattern: str) -> Q:
    parts = pattern.split("*")
    if pattern == "*":
        return Q(pk__isnull=False)
    # A leading or trailing * only: LIKE, which needs no regular expression engine.
    if len(parts) == 2 and not parts[0]:
        return Q(value__iendswith=parts[1])
    if len(parts) == 2 and not parts[1]:
        return Q(value__istartswith=parts[0])
    if len(parts) == 3 and not parts[0] and not parts[2]:
        return Q(value__icontains=parts[1])
    return Q(value__iregex=_wildcard_regex(pattern))


def _wildcard_regex(pattern: str) -> str:
    # re.escape only escapes punctuation, which PostgreSQL's regular expressions read as literal too.
    return "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"


class Exclusions:
    """A parsed exclusion list: ``q()`` for the database, ``matches()`` for one value."""

    def __init__(self, entries) -> None:
        self.entries: tuple[Entry, ...] = tuple(entries)
        self._exact = {entry.text for entry in self.entries if entry.kind == "exact"}
        self._wildcards = [
            re.compile(_wildcard_regex(entry.text), re.IGNORECASE | re.DOTALL)
            for entry in self.entries
            if entry.kind == "wildcard"
        ]
        self._networks = [entry.text for entry in self.entries if entry.kind == "cidr"]

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def q(self) -> Q:
        """The indicators the list excludes, for ``queryset.exclude(exclusions.q())``.

        An empty list gives a ``Q`` that matches nothing (``pk__in=[]``), so excluding it keeps
        every row; callers may skip it with ``if exclusions:``.
        """
        terms = [Q(value__in=sorted(self._exact))] if self._exact else []
        terms += [_wildcard_q(entry.text) for entry in self.entries if entry.kind == "wildcard"]
        terms += [Q(InNetwork(network)) for network in self._networks]
        return reduce(or_, terms) if terms else Q(pk__in=[])

    def matches(self, type_: str, value: str) -> bool:
        """Whether the list excludes the indicator ``(type_, value)``: what ``q()`` selects, in Python."""
        return (
            value in self._exact
            or any(pattern.match(value) for pattern in self._wildcards)
            or any(in_network(type_, value, network) for network in self._networks)
        )
