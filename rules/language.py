"""The business-rule language: which indicators a rule selects.

A rule is a boolean expression over the fields of an indicator::

    type in (md5, sha256) and reputation >= 7
    and not tags contains "test"      # samples a vendor asked us not to share

:func:`parse` reads the text into a small tree and checks every name and value against the store
(a typo is reported with its line and column, rather than found later as an empty selection).
:func:`compile_rule` turns the tree into a ``Q`` over :class:`exchange.models.Indicator`, so the
selection runs in the database; the text is never evaluated as Python.

Grammar (keywords, field names and bare ``type``/``severity``/``active`` values are
case-insensitive; ``#`` starts a comment to the end of the line; newlines are white space)::

    rule        := [expression]                         empty: every indicator
    expression  := and_expr ("or" and_expr)*
    and_expr    := not_expr ("and" not_expr)*
    not_expr    := "not" not_expr | "(" expression ")" | comparison
    comparison  := field operator literal
                 | field ["not"] "in" "(" literal ("," literal)* ")"
    operator    := "=" | "!=" | "<" | "<=" | ">" | ">="
                 | "contains" | "startswith" | "endswith" | "matches"
    literal     := word | 'string' | "string"

A word is a run of characters other than white space, ``( ) , ' " # = ! < >``. In a quoted
string a backslash escapes a quote or a backslash; any other backslash is kept, so regular
expressions read as usual (``"\\d+\\.example"``). Relative times are ``-30m``, ``-12h``, ``-7d``,
``-2w`` (``+`` for the future); dates are ISO 8601 (``2026-01-31``, ``2026-01-31T10:00:00Z``), UTC
when no offset is given.

Fields, their operators and values (``FIELDS`` below)::

    type         = != in, not in            url, domain, hostname, ipv4, ipv6, cidr, md5, sha1, sha256, email
    value        = != in, not in            compared in normal form (hxxp://Evil[.]com is http://evil.com/)
                 contains startswith        ignoring case, the literal refanged
                 endswith
                 matches                    a regular expression, case-sensitive (write the subset
                                            Python and PostgreSQL share; Python checks it)
    comments     as value, as written
    source       as comments: the name of a configuration with a sighting of the indicator
    tags         = contains                 has the tag (exact, case-sensitive); != has not;
                 != in, not in              in: has any of them; not in: has none
    reputation   = != < <= > >= in, not in  an integer from 1 to 10
    severity     = != < <= > >= in, not in  by rank: unknown < low < medium < high < critical
    first_seen   < <= > >=                  a date or a relative time
    last_seen    < <= > >=                  a date or a relative time
    expires_at   < <= > >=                  empty means never expires, which is later than any moment:
                                            "expires_at > x" selects it, "expires_at < x" does not
    active       = !=                       true, false
"""

import difflib
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce

from django.db.models import Q
from django.utils import timezone

from exchange.models import IndicatorType, Severity
from rules import sql


class RuleError(ValueError):
    """A rule that does not parse or check; ``str()`` is ``"line L, col C: message"``."""

    def __init__(self, message: str, line: int = 1, col: int = 1) -> None:
        super().__init__(f"line {line}, col {col}: {message}")
        self.message, self.line, self.col = message, line, col


# The tree. Positions are 1-based, of the token that starts the node.


@dataclass(frozen=True)
class Comparison:
    """``field op values``; values are checked and typed (str, int, bool, datetime, timedelta)."""

    field: str
    op: str
    values: tuple
    line: int
    col: int


@dataclass(frozen=True)
class Not:
    operand: "Node"


@dataclass(frozen=True)
class And:
    operands: tuple["Node", ...]


@dataclass(frozen=True)
class Or:
    operands: tuple["Node", ...]


Node = Comparison | Not | And | Or

# Lexer.

_TOKEN = re.compile(
    r"""(?P<skip>\s+|\#[^\n]*)
      |(?P<punct>[(),])
      |(?P<op>[=!<>]+)
      |(?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      |(?P<quote>['"])
      |(?P<word>[^\s(),'"\#=!<>]+)""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "string", "op", "(", ")", ",", or "end"
    text: str  # as written
    offset: int

    @property
    def literal(self) -> str:
        if self.kind != "string":
            return self.text
        return _ESCAPE.sub(lambda m: m.group(1) if m.group(1) in "\\'\"" else m.group(), self.text[1:-1])

    def shown(self) -> str:
        return "the end of the rule" if self.kind == "end" else f"'{self.text}'"


def _position(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


def _tokens(text: str) -> list[Token]:
    tokens, offset = [], 0
    while offset < len(text):
        match = _TOKEN.match(text, offset)  # the word alternative takes any other character
        kind = match.lastgroup
        if kind == "quote":
            raise RuleError("unterminated string", *_position(text, offset))
        if kind != "skip":
            tokens.append(Token(match.group() if kind == "punct" else kind, match.group(), offset))
        offset = match.end()
    return [*tokens, Token("end", "", len(text))]


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (one of {', '.join(choices)})"


# Literal values, per field. A converter raises ValueError; the parser adds the position.

EQUALITY = ("=", "!=", "in", "not in")
ORDERING = ("<", "<=", ">", ">=")
TEXT = ("contains", "startswith", "endswith", "matches")
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "not in", *TEXT)
_MISTAKES = {"==": "=", "<>": "!=", "=<": "<=", "=>": ">="}


def _text(literal: str) -> str:
    return literal


def _choice(what: str, choices: list[str]) -> Callable[[str], str]:
    def convert(literal: str) -> str:
        if literal.lower() in choices:
            return literal.lower()
        raise ValueError(f"unknown {what} '{literal}'{_suggest(literal.lower(), choices)}")

    return convert


def _reputation(literal: str) -> int:
    if literal.isascii() and literal.isdigit() and 1 <= int(literal) <= 10:
        return int(literal)
    raise ValueError(f"reputation must be an integer from 1 to 10, not '{literal}'")


def _boolean(literal: str) -> bool:
    if literal.lower() in ("true", "false"):
        return literal.lower() == "true"
    raise ValueError(f"active is true or false, not '{literal}'")


_RELATIVE = re.compile(r"([-+])([0-9]+)([mhdw])", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ].+)?", re.IGNORECASE)


def _moment(literal: str) -> datetime | timedelta:
    relative = _RELATIVE.fullmatch(literal)
    if relative:
        sign, amount, unit = relative.groups()
        delta = timedelta(**{_UNITS[unit.lower()]: int(amount)})
        return -delta if sign == "-" else delta
    try:
        moment = datetime.fromisoformat(literal) if _ISO.fullmatch(literal) else None
    except ValueError as exc:
        raise ValueError(f"'{literal}' is not a valid date ({exc})") from None
    if moment is None:
        raise ValueError(f"expected a date (2026-01-31T10:00:00Z) or a relative time (-7d), not '{literal}'")
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


# Parser: recursive descent, one method per grammar rule.


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0

    def error(self, message: str, token: Token) -> RuleError:
        return RuleError(message, *_position(self.text, token.offset))

    def next(self) -> Token:
        token = self.tokens[self.index]
        self.index += token.kind != "end"
        return token

    def peek(self) -> Token:
        return self.tokens[self.index]

    def accept(self, keyword: str) -> bool:
        token = self.peek()
        if token.kind == "word" and token.text.lower() == keyword:
            self.index += 1
            return True
        return False

    def rule(self) -> Node | None:
        if self.peek().kind == "end":
            return None
        node = self.expression()
        token = self.peek()
        if token.kind == ")":
            raise self.error("unmatched ')'", token)
        if token.kind != "end":
            raise self.error(f"expected 'and', 'or' or the end of the rule, found {token.shown()}", token)
        return node

    def expression(self) -> Node:
        operands = [self.and_expr()]
        while self.accept("or"):
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self) -> Node:
        operands = [self.not_expr()]
        while self.accept("and"):
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_expr(self) -> Node:
        if self.accept("not"):
            return Not(self.not_expr())
        token = self.next()
        if token.kind == "(":
            node = self.expression()
            self.close(token, "'and', 'or'")
            return node
        if token.kind == "word" and token.text.lower() not in ("and", "or"):
            return self.comparison(token)
        raise self.error(f"expected a field name, found {token.shown()}", token)

    def close(self, opening: Token, expected: str) -> None:
        token = self.next()
        if token.kind == "end":
            raise self.error("'(' is never closed", opening)
        if token.kind != ")":
            raise self.error(f"expected {expected} or ')', found {token.shown()}", token)

    def comparison(self, name: Token) -> Comparison:
        field = FIELDS.get(name.text.lower())
        if field is None:
            raise self.error(f"unknown field '{name.text}'{_suggest(name.text.lower(), FIELDS)}", name)
        token, op = self.operator(name)
        if op not in field.ops:
            allowed = ", ".join(field.ops)
            raise self.error(f"operator '{op}' cannot be used with {name.text.lower()} (use {allowed})", token)
        values = tuple(self.typed(field, op, literal) for literal in self.literals(op))
        return Comparison(name.text.lower(), op, values, *_position(self.text, name.offset))

    def operator(self, name: Token) -> tuple[Token, str]:
        token = self.next()
        word = token.text.lower()
        if token.kind in ("op", "word") and word in OPERATORS:
            return token, word
        if token.kind == "word" and word == "not":
            if self.accept("in"):
                return token, "not in"
            raise self.error(f"expected 'in' after 'not', found {self.peek().shown()}", self.peek())
        if token.kind in ("op", "word"):
            hint = f" (did you mean '{_MISTAKES[word]}'?)" if word in _MISTAKES else _suggest(word, OPERATORS)
            raise self.error(f"unknown operator '{token.text}'{hint}", token)
        raise self.error(f"expected an operator after '{name.text}', found {token.shown()}", token)

    def literals(self, op: str) -> list[Token]:
        if op not in ("in", "not in"):
            return [self.literal(f"after '{op}'")]
        opening = self.next()
        if opening.kind != "(":
            raise self.error(f"expected '(' after '{op}', found {opening.shown()}", opening)
        if self.peek().kind == ")":
            raise self.error(f"empty list: '{op}' needs at least one value", opening)
        literals = [self.literal("in the list")]
        while self.peek().kind == ",":
            self.next()
            literals.append(self.literal("after ','"))
        self.close(opening, "','")
        return literals

    def literal(self, where: str) -> Token:
        token = self.next()
        if token.kind not in ("word", "string"):
            raise self.error(f"expected a value {where}, found {token.shown()}", token)
        return token

    def typed(self, field: "Field", op: str, token: Token):
        try:
            value = field.convert(token.literal)
            if op == "matches":
                re.compile(value)
        except re.error as exc:
            raise self.error(f"invalid regular expression: {exc}", token) from None
        except ValueError as exc:
            raise self.error(str(exc), token) from None
        return value


# Each field: its operators, how a literal becomes a value, and how a comparison becomes a Q.


@dataclass(frozen=True)
class Field:
    ops: tuple[str, ...]
    convert: Callable[[str], object]
    build: Callable[[str, str, tuple, datetime], Q]  # (field, op, values, now)


FIELDS: dict[str, Field] = {
    "type": Field(EQUALITY, _choice("type", IndicatorType.values), sql.column_q),
    "value": Field(EQUALITY + TEXT, _text, sql.value_q),
    "reputation": Field(EQUALITY + ORDERING, _reputation, sql.column_q),
    "severity": Field(EQUALITY + ORDERING, _choice("severity", Severity.values), sql.severity_q),
    "tags": Field((*EQUALITY, "contains"), _text, sql.tags_q),
    "source": Field(EQUALITY + TEXT, _text, sql.source_q),
    "first_seen": Field(ORDERING, _moment, sql.time_q),
    "last_seen": Field(ORDERING, _moment, sql.time_q),
    "expires_at": Field(ORDERING, _moment, sql.time_q),
    "active": Field(("=", "!="), _boolean, sql.column_q),
    "comments": Field(EQUALITY + TEXT, _text, sql.column_q),
}


def _q(node: Node, now: datetime) -> Q:
    if isinstance(node, Not):
        return ~_q(node.operand, now)
    if isinstance(node, And | Or):
        return reduce(operator.and_ if isinstance(node, And) else operator.or_, (_q(n, now) for n in node.operands))
    return FIELDS[node.field].build(node.field, node.op, node.values, now)


# The public API.


def parse(text: str) -> Node | None:
    """The checked tree of a rule; ``None`` for an empty rule. Raises :class:`RuleError`."""
    return _Parser(text).rule()


def validate(text: str) -> None:
    """Raise :class:`RuleError` when ``text`` is not a valid rule."""
    parse(text)


def compile_rule(text: str, *, now: datetime | None = None) -> Q:
    """The ``Q`` over ``Indicator`` that selects what the rule says.

    An empty rule gives ``Q()``, no condition: ``filter(Q())`` keeps every row, and so does
    ``exclude(Q())``, so use the ``Q`` to select, not to exclude. Relative times count from
    ``now`` (default: the current time).
    """
    node = parse(text)
    return Q() if node is None else _q(node, now or timezone.now())
