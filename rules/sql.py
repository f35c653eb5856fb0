"""The SQL of rules: each field's comparison as a ``Q`` over ``Indicator``, and the expressions
the ORM has no lookup for (tag membership in a JSON list, "address inside a CIDR block").

Those two are boolean expressions, used as ``Q(expression)``, so they combine with ``&``, ``|`` and
``~`` and work in ``.exclude()``. Each renders per database (``as_sqlite`` / ``as_postgresql``):
the ``Q`` a rule compiles to does not depend on which connection runs it.
"""

import ipaddress
import json
import operator
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache

from django.db import NotSupportedError
from django.db.models import BooleanField, Exists, F, Func, OuterRef, Q

from exchange.models import Severity, Sighting
from exchange.normalize import Rejected, detect, normalize, refang

IP_TYPES = ("ipv4", "ipv6", "cidr")
SQLITE_IN_NETWORK = "cte_in_network"


class _Boolean(Func):
    output_field = BooleanField()

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError(f"{type(self).__name__} runs on SQLite and PostgreSQL, not {connection.vendor}")


class HasAnyTag(_Boolean):
    """True when the JSON list in ``column`` holds any of ``tags`` (exact, case-sensitive)."""

    def __init__(self, column: str, tags: Sequence[str]) -> None:
        super().__init__(F(column))
        self.tags = tuple(tags)

    def as_sqlite(self, compiler, connection, **extra):
        # SQLite has no JSON containment operator (Django refuses the ``contains`` lookup there).
        column, params = compiler.compile(self.get_source_expressions()[0])
        marks = ", ".join(["%s"] * len(self.tags))
        sql = f"EXISTS (SELECT 1 FROM json_each({column}) AS tag WHERE tag.value IN ({marks}))"
        return sql, (*params, *self.tags)

    def as_postgresql(self, compiler, connection, **extra):
        # The SQL of ``tags__contains=[tag]``: jsonb containment, which a GIN index on tags can serve.
        column, params = compiler.compile(self.get_source_expressions()[0])
        sql = " OR ".join([f"{column} @> %s::jsonb"] * len(self.tags))
        return f"({sql})", tuple(arg for tag in self.tags for arg in (*params, json.dumps([tag])))


class InNetwork(_Boolean):
    """True for ipv4, ipv6 and cidr indicators inside ``network``; false for every other type."""

    def __init__(self, network: str) -> None:
        super().__init__(F("type"), F("value"))
        self.network = network

    def as_postgresql(self, compiler, connection, **extra):
        (type_sql, type_params), (value_sql, value_params) = self._compile_columns(compiler)
        # The CASE keeps the cast away from URLs and hashes: PostgreSQL may evaluate the terms of
        # a plain AND in any order, and a failed ::inet cast aborts the whole query.
        marks = ", ".join(["%s"] * len(IP_TYPES))
        sql = f"CASE WHEN {type_sql} IN ({marks}) THEN {value_sql}::inet <<= %s::cidr ELSE false END"
        return sql, (*type_params, *IP_TYPES, *value_params, self.network)

    def as_sqlite(self, compiler, connection, **extra):
        (type_sql, type_params), (value_sql, value_params) = self._compile_columns(compiler)
        return f"{SQLITE_IN_NETWORK}({type_sql}, {value_sql}, %s)", (*type_params, *value_params, self.network)

    def _compile_columns(self, compiler) -> list[tuple[str, tuple]]:
        return [compiler.compile(expression) for expression in self.get_source_expressions()]


@lru_cache(maxsize=256)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text, strict=False)


def in_network(type_: str | None, value: str | None, network: str) -> bool:
    """Python's answer to :class:`InNetwork`, for one value; false for anything unparsable."""
    if type_ not in IP_TYPES or not value:
        return False
    try:
        block, inner = _network(network), ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    # subnet_of raises TypeError across families; an IPv4 block never holds an IPv6 address.
    return inner.version == block.version and inner.subnet_of(block)


def _sqlite_in_network(type_, value, network) -> int:
    return int(in_network(type_, value, network))


def register_sqlite_functions(sender, connection, **kwargs) -> None:
    """``connection_created`` receiver: give each new SQLite connection the functions above."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(SQLITE_IN_NETWORK, 3, _sqlite_in_network, deterministic=True)


# One function per kind of field: (field, op, values, now) -> Q, values checked by the parser.

_LOOKUPS = {
    "=": "exact", "!=": "exact", "in": "in", "not in": "in", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte",
    # Case-insensitive because SQLite's LIKE is (Django's contains is icontains there): same answer on both.
    "contains": "icontains", "startswith": "istartswith", "endswith": "iendswith", "matches": "regex",
}
_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _signed(q: Q, op: str) -> Q:
    return ~q if op in ("!=", "not in") else q


def _argument(op: str, values: Sequence):
    return list(values) if op in ("in", "not in") else values[0]


def column_q(field: str, op: str, values: Sequence, now: datetime | None = None) -> Q:
    """``field op values`` on the indicator's own column."""
    return _signed(Q(**{f"{field}__{_LOOKUPS[op]}": _argument(op, values)}), op)


def _canonical(literal: str) -> str:
    # Stored values are normalized: compare with the literal's normal form when it has one.
    try:
        return normalize(detect(literal), literal)
    except Rejected:
        return literal


def value_q(field: str, op: str, values: Sequence, now: datetime | None = None) -> Q:
    if op in ("=", "!=", "in", "not in"):
        values = [_canonical(value) for value in values]
    elif op != "matches":  # no stored value is defanged: "evil[.]com" can only mean "evil.com"
        values = [refang(value) for value in values]
    return column_q(field, op, values)


def severity_q(field: str, op: str, values: Sequence, now: datetime | None = None) -> Q:
    """Severities compare by rank: ``>= high`` is ``in (high, critical)``."""
    if op not in _COMPARE:
        return column_q(field, op, values)
    rank, compare = Severity.rank(values[0]), _COMPARE[op]
    return Q(**{f"{field}__in": [value for value in Severity.values if compare(Severity.rank(value), rank)]})


def tags_q(field: str, op: str, values: Sequence, now: datetime | None = None) -> Q:
    """``=`` and ``contains``: has the tag; ``in``: has any; ``!=`` and ``not in``: has none."""
    return _signed(Q(HasAnyTag(field, values)), op)


def source_q(field: str, op: str, values: Sequence, now: datetime | None = None) -> Q:
    """The indicator has a sighting by a configuration whose name matches."""
    # EXISTS rather than a join: an indicator seen by two matching sources is still one row.
    lookup = {f"source__name__{_LOOKUPS[op]}": _argument(op, values)}
    return _signed(Q(Exists(Sighting.objects.filter(indicator=OuterRef("pk"), **lookup))), op)


def time_q(field: str, op: str, values: Sequence, now: datetime) -> Q:
    """Relative times (timedelta values) count from ``now``."""
    moments = [now + value if isinstance(value, timedelta) else value for value in values]
    q = column_q(field, op, moments)
    if field == "expires_at" and op in (">", ">="):
        q |= Q(expires_at__isnull=True)  # empty expires_at: never expires, so later than any moment
    return q
