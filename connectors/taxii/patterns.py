"""STIX indicator objects to records: each observable comparison of a pattern is one indicator.

Patterns are parsed with ``stix2-patterns`` (the OASIS grammar), never matched with regular
expressions: quoting, escapes, ``IN`` sets and compound expressions only come out right from
the parse tree. What an indicator object gives:

- every comparison ``<object>:<path> = '<value>'`` on a type this system keeps becomes its own
  record: ``url:value``, ``domain-name:value``, ``ipv4-addr:value`` and ``ipv6-addr:value``
  (a CIDR when the value has a prefix length), ``email-addr:value``, and ``file:hashes.MD5``,
  ``'SHA-1'`` and ``'SHA-256'`` (also spelt ``SHA1``, ``SHA256``). ``IN ('a', 'b')`` gives one
  record per member, and ``ipv4-addr:value ISSUBSET '198.51.100.0/24'`` the network as a CIDR;
- a compound pattern (``AND``, ``OR``, several observation expressions, qualifiers) is not one
  observable: each comparison stands alone, and each record carries the whole pattern in its
  comments, so an analyst sees the context it came from;
- a comparison on a kept type that does not name a value (``!=``, ``NOT``, ``LIKE``,
  ``MATCHES``, ``>``, ...) is rejected with its reason; comparisons on other objects
  (``file:name``, ``network-traffic:dst_port``) are context and only appear in that pattern;
- ``confidence`` (0-100) becomes the reputation (1-10): 0-10 is 1, 11-20 is 2, ... 91-100 is 10;
  ``labels`` and ``indicator_types`` become tags, ``created``/``modified`` first/last seen,
  ``description`` the comments, and the object's id the external id;
- a revoked indicator, or one whose ``valid_until`` has passed, gives no record: its values are
  *withdrawn* (the source no longer vouches for them);
- another pattern language (``sigma``, ``yara``, ``snort``, ...) and a pattern that does not
  parse are rejected with the reason; objects that are not indicators are ignored.
"""

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from antlr4 import ParseTreeListener
from stix2patterns.exceptions import ParseException
from stix2patterns.v20.pattern import Pattern as Pattern20
from stix2patterns.v21.pattern import Pattern as Pattern21

from connectors.base import Record

#: STIX object type -> this system's indicator type (IP types become "cidr" with a prefix length).
VALUE_TYPES = {"url": "url", "domain-name": "domain", "ipv4-addr": "ipv4", "ipv6-addr": "ipv6",
               "email-addr": "email"}
#: file:hashes keys, upper-cased without "-" (STIX 2.1 says 'SHA-256', STIX 2.0 feeds write SHA256).
HASH_TYPES = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256"}
KEPT = "url, domain-name, ipv4-addr, ipv6-addr, email-addr values and file MD5/SHA-1/SHA-256 hashes"
MAX_SHOWN = 300


@dataclass(frozen=True)
class Comparison:
    """One comparison of a pattern: ``file:hashes.'SHA-256' = 'ab...'``."""

    object_type: str
    path: tuple
    operator: str  # "=", "!=", "IN", "LIKE", ..., with "NOT " in front when negated
    values: tuple  # the literals, unescaped; None for a literal that is not a string
    text: str  # as written in the pattern


@dataclass
class Reading:
    """What one STIX object gives: records (rejections included) and withdrawn (type, value) pairs."""

    records: list[Record] = field(default_factory=list)
    withdrawn: list[tuple[str, str]] = field(default_factory=list)


def reputation(confidence) -> int | None:
    """STIX ``confidence`` 0-100 as a reputation 1-10 (0-10 -> 1, 11-20 -> 2, ... 91-100 -> 10)."""
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        return None
    return min(max(math.ceil(confidence / 10), 1), 10)


def timestamp(text) -> datetime | None:
    """A STIX timestamp (``2024-05-01T10:00:00.123Z``) as an aware datetime; None if it is not one."""
    if not isinstance(text, str) or not text:
        return None
    head, dot, fraction = text.rstrip("Zz").partition(".")
    # Python reads at most microseconds; STIX allows any number of fractional digits.
    text = head + (dot + fraction[:6] if fraction else "")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_object(obj: dict, now: datetime) -> Reading:
    """The records of one STIX object (see the module docstring)."""
    reading = Reading()
    if not isinstance(obj, dict) or obj.get("type") != "indicator":
        return reading
    ident = str(obj.get("id") or "an indicator without id")
    pattern = obj.get("pattern")
    pattern_type = obj.get("pattern_type") or "stix"  # STIX 2.0 has STIX patterns only, and no such field
    if pattern_type != "stix":
        if not _withdrawn(obj, now):
            reading.records.append(_reject(pattern or ident, f"{ident}: pattern_type {pattern_type!r} is not "
                                                            "supported (only STIX patterns are read)"))
        return reading
    if not isinstance(pattern, str) or not pattern.strip():
        reading.records.append(_reject(ident, f"{ident}: the indicator has no pattern"))
        return reading
    try:
        comparisons, compound = parse(pattern, obj.get("spec_version") or "2.0")
    except ParseException as exc:
        if not _withdrawn(obj, now):
            reading.records.append(_reject(pattern, f"{ident}: the STIX pattern does not parse: {exc}"))
        return reading
    base = _base_record(obj, ident, pattern if compound else "")
    kept = rejected = 0
    for comparison in comparisons:
        for record in _records(comparison, ident, base):
            if record.error:
                rejected += 1
            else:
                kept += 1
            reading.records.append(record)
    if _withdrawn(obj, now):
        reading.withdrawn = sorted({(r.type, r.value) for r in reading.records if not r.error})
        reading.records = []
    elif not kept and not rejected:
        reading.records.append(_reject(pattern, f"{ident}: no comparison in the pattern names an indicator "
                                                f"this system keeps ({KEPT})"))
    return reading


def parse(pattern: str, spec_version: str = "2.1") -> tuple[list[Comparison], bool]:
    """The comparisons of ``pattern`` and whether it is compound; ParseException if it does not parse."""
    grammar = Pattern20 if spec_version == "2.0" else Pattern21
    listener = _Comparisons(pattern)
    grammar(pattern).walk(listener)
    compound = len(listener.found) > 1 or listener.combined
    return listener.found, compound


def _withdrawn(obj: dict, now: datetime) -> bool:
    if obj.get("revoked") is True:
        return True
    until = timestamp(obj.get("valid_until"))
    return until is not None and until <= now


def _reject(value: str, reason: str, type_: str = "") -> Record:
    return Record(str(value)[:1000], type_ or None, error=reason)


def _base_record(obj: dict, ident: str, compound_pattern: str) -> Record:
    tags = [tag for key in ("labels", "indicator_types") for tag in (obj.get(key) or []) if isinstance(tag, str)]
    notes = [obj["description"].strip()] if isinstance(obj.get("description"), str) and obj["description"].strip() \
        else []
    if compound_pattern:
        notes.append(f"Compound STIX pattern (each comparison is its own indicator): {compound_pattern}")
    return Record(
        value="", first_seen=timestamp(obj.get("created")), last_seen=timestamp(obj.get("modified")),
        reputation=reputation(obj.get("confidence")), tags=tags, comments="\n\n".join(notes), external_id=ident,
    )


def indicator_type(comparison: Comparison) -> str | None:
    """This system's type for the comparison's object path, or None when it keeps no such type."""
    path = comparison.path
    if comparison.object_type in VALUE_TYPES and path == ("value",):
        return VALUE_TYPES[comparison.object_type]
    if comparison.object_type == "file" and len(path) == 2 and path[0] == "hashes" and isinstance(path[1], str):
        return HASH_TYPES.get(path[1].upper().replace("-", "").replace("_", ""))
    return None


def _records(comparison: Comparison, ident: str, base: Record) -> list[Record]:
    type_ = indicator_type(comparison)
    if type_ is None:
        return []  # context, such as file:name next to a hash: kept in the pattern only
    shown = comparison.text if len(comparison.text) <= MAX_SHOWN else comparison.text[:MAX_SHOWN] + "…"
    operator = comparison.operator
    network = operator == "ISSUBSET" and type_ in ("ipv4", "ipv6")
    if operator not in ("=", "IN") and not network:
        return [_reject(shown, f"{ident}: {shown}: a {operator} comparison does not name one value, "
                               "so it cannot be an indicator", type_)]
    records = []
    for value in comparison.values:
        if value is None:
            records.append(_reject(shown, f"{ident}: {shown}: the value is not a string", type_))
            continue
        kind = "cidr" if type_ in ("ipv4", "ipv6") and ("/" in value or network) else type_
        records.append(Record(value, kind, first_seen=base.first_seen, last_seen=base.last_seen,
                              reputation=base.reputation, tags=list(base.tags), comments=base.comments,
                              external_id=base.external_id))
    return records


def _string(token) -> str:
    """A StringLiteral token's text, without its quotes and escapes (STIX escapes ' and \\ only)."""
    text = token.getText()[1:-1]
    out, escaped = [], False
    for char in text:
        if escaped or char != "\\":
            out.append(char)
            escaped = False
        else:
            escaped = True
    return "".join(out)


def _literal(context) -> str | None:
    """A primitiveLiteral's value when it is a string; None for numbers, booleans, binary, hex."""
    orderable = context.orderableLiteral() if hasattr(context, "orderableLiteral") else None
    token = orderable.StringLiteral() if orderable is not None else None
    return _string(token) if token is not None else None


class _Comparisons(ParseTreeListener):
    """Walks a parse tree (STIX 2.0 or 2.1 grammar: the rule names are the same) and collects
    its comparisons, each with its object path as the tree spells it."""

    def __init__(self, text: str):
        self.text = text
        self.found: list[Comparison] = []
        self.combined = False  # AND/OR/FOLLOWEDBY between observations, or a qualifier
        self._type = ""
        self._path: list = []

    def _add(self, context, operator: str, values: tuple) -> None:
        negated = "NOT " if getattr(context, "NOT", lambda: None)() else ""
        written = self.text[context.start.start:context.stop.stop + 1]
        self.found.append(Comparison(self._type, tuple(self._path), negated + operator, values, written))

    def exitObjectType(self, context):
        self._type = context.getText()

    def exitFirstPathComponent(self, context):
        token = context.StringLiteral()
        self._path = [_string(token) if token is not None else context.getText()]

    def exitKeyPathStep(self, context):
        token = context.StringLiteral()
        self._path.append(_string(token) if token is not None else context.IdentifierWithoutHyphen().getText())

    def exitIndexPathStep(self, context):
        self._path.append("*" if context.ASTERISK() else int(context.IntPosLiteral().getText()))

    def exitPropTestEqual(self, context):
        self._add(context, (context.EQ() or context.NEQ()).getText(), (_literal(context.primitiveLiteral()),))

    def exitPropTestOrder(self, context):
        operator = (context.GT() or context.LT() or context.GE() or context.LE()).getText()
        self._add(context, operator, (None,))

    def exitPropTestSet(self, context):
        members = context.setLiteral().primitiveLiteral()
        self._add(context, "IN", tuple(_literal(member) for member in members))

    def exitPropTestLike(self, context):
        self._add(context, "LIKE", (_string(context.StringLiteral()),))

    def exitPropTestRegex(self, context):
        self._add(context, "MATCHES", (_string(context.StringLiteral()),))

    def exitPropTestIsSubset(self, context):
        self._add(context, "ISSUBSET", (_string(context.StringLiteral()),))

    def exitPropTestIsSuperset(self, context):
        self._add(context, "ISSUPERSET", (_string(context.StringLiteral()),))

    def exitPropTestExists(self, context):  # STIX 2.1: EXISTS object:path
        self._add(context, "EXISTS", (None,))

    def exitObservationExpressionOr(self, context):
        self.combined = self.combined or bool(context.OR())

    def exitObservationExpressionAnd(self, context):
        self.combined = self.combined or bool(context.AND())

    def exitObservationExpressions(self, context):
        self.combined = self.combined or bool(context.FOLLOWEDBY())

    def exitStartStopQualifier(self, context):
        self.combined = True

    def exitWithinQualifier(self, context):
        self.combined = True

    def exitRepeatedQualifier(self, context):
        self.combined = True
