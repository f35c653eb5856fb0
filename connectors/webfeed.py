"""Web feed: a CSV or plain-text list of indicators over HTTP(S).

Every pull reads the whole list: a value still listed is seen again now, so it stays active,
and one that left the list ages out after the aging criteria. A feed has no notion of "since";
the initial range does not apply. The cursor is the last line merged, kept with the response's
validators (ETag, Last-Modified): a killed pull of the same file skips what it already merged,
a changed file is read from the top.
"""

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import requests
import urllib3
from django import forms

from connectors.base import Batch, Connector, ConnectorError, Context, Record
from connectors.http import describe
from connectors.registry import register
from exchange.models import IndicatorType, Severity
from exchange.normalize import Rejected, normalize_any

BATCH_SIZE = 10_000
MAX_LINE = 65_536

PRESETS = {
    "custom": {"label": "Custom (use the fields below)"},
    "urlhaus_csv": {
        "label": "abuse.ch URLhaus, recent URLs (CSV)",
        "url": "https://urlhaus.abuse.ch/downloads/csv_recent/",
        "format": "csv", "indicator_type": "url", "column": "3", "first_seen_column": "2",
        "tags_column": "7", "comment_prefix": "#", "delimiter": ",", "header_rows": 0,
    },
    "feodo_ipblocklist": {
        "label": "abuse.ch Feodo Tracker, botnet C2 IP blocklist",
        "url": "https://feodotracker.abuse.ch/downloads/ipblocklist.txt",
        "format": "text", "indicator_type": "ipv4", "comment_prefix": "#", "header_rows": 0,
    },
    "malwarebazaar_sha256": {
        "label": "abuse.ch MalwareBazaar, recent SHA-256 hashes",
        "url": "https://bazaar.abuse.ch/export/txt/sha256/recent/",
        "format": "text", "indicator_type": "sha256", "comment_prefix": "#", "header_rows": 0,
    },
    "plain_list": {
        "label": "Plain list, one value per line, types detected",
        "format": "text", "indicator_type": "detect", "comment_prefix": "#", "header_rows": 0,
    },
}
_PARSING = ("url", "format", "indicator_type", "column", "first_seen_column", "tags_column",
            "comment_prefix", "delimiter", "header_rows")
_DEFAULTS = {"format": "text", "indicator_type": "detect", "column": "1", "first_seen_column": "",
             "tags_column": "", "comment_prefix": "#", "delimiter": ",", "header_rows": 0}
# Reading the body goes to urllib3 directly (response.raw), whose errors are not requests'.
_READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError)


class WebFeedForm(forms.Form):
    preset = forms.ChoiceField(
        choices=[(key, preset["label"]) for key, preset in PRESETS.items()], initial="custom",
        help_text="A known feed's parsing; the fields below apply to Custom (and the URL to all).",
    )
    url = forms.URLField(
        label="Feed URL", required=False, max_length=2000,
        help_text="Empty with a preset: the preset's public URL.",
    )
    format = forms.ChoiceField(choices=[("text", "Plain text, one value per line"), ("csv", "CSV")], initial="text")
    indicator_type = forms.ChoiceField(
        choices=[("detect", "Detect from each value")] + list(IndicatorType.choices), initial="detect",
    )
    column = forms.CharField(
        required=False, initial="1", max_length=100,
        help_text="CSV: the column holding the value, a number from 1 or a header name.",
    )
    first_seen_column = forms.CharField(required=False, max_length=100, help_text="CSV, optional: a date column.")
    tags_column = forms.CharField(required=False, max_length=100, help_text="CSV, optional: comma-separated tags.")
    comment_prefix = forms.CharField(required=False, initial="#", max_length=10, strip=False)
    delimiter = forms.CharField(
        required=False, initial=",", max_length=3, strip=False, help_text='CSV: one character; "tab" for a tab.',
    )
    header_rows = forms.IntegerField(min_value=0, max_value=100, initial=0, required=False,
                                     help_text="Lines to skip at the top, after comments.")
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.UNKNOWN)
    tags = forms.CharField(required=False, max_length=500, help_text="Tags added to every indicator, comma-separated.")
    username = forms.CharField(required=False, max_length=200, help_text="Basic authentication, if the feed asks.")
    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))

    def clean(self):
        data = super().clean()
        options = effective_options(data)
        if not options.get("url"):
            self.add_error("url", "Give the feed's URL (the Custom and Plain list presets have none).")
        if options["format"] == "csv":
            delimiter = options["delimiter"]
            if len(delimiter) != 1 and delimiter.lower() != "tab":
                self.add_error("delimiter", 'One character, or "tab".')
            if not options["column"]:
                self.add_error("column", "Name the column that holds the value.")
            for name in ("column", "first_seen_column", "tags_column"):
                spec = (options[name] or "").strip()
                if spec.isdigit() and int(spec) == 0:
                    self.add_error(name, "Columns are numbered from 1.")
        return data


def effective_options(data: dict) -> dict:
    """The parsing options: the preset's, or the custom fields, with the URL from the form first."""
    preset = PRESETS.get(data.get("preset") or "custom", PRESETS["custom"])
    source = data if preset is PRESETS["custom"] else preset
    options = {key: source.get(key) if source.get(key) not in (None, "") else _DEFAULTS.get(key)
               for key in _PARSING}
    options["url"] = data.get("url") or preset.get("url") or ""
    options["header_rows"] = int(options["header_rows"] or 0)
    return options


class _Column:
    """A CSV column named by a 1-based number or by a header name."""

    def __init__(self, spec: str):
        self.spec = (spec or "").strip()
        self.index = int(self.spec) - 1 if self.spec.isdigit() else None

    def resolve(self, header: list[str]) -> None:
        if self.index is None and self.spec:
            names = [name.strip().lstrip("#").strip().lower() for name in header]
            if self.spec.lower() not in names:
                raise ConnectorError(f"the CSV header has no column {self.spec!r} (it has: {', '.join(header)})",
                                     permanent=True)
            self.index = names.index(self.spec.lower())

    def get(self, row: list[str]) -> str | None:
        if self.index is None or self.index >= len(row):
            return None
        return row[self.index]


def _read_failure(url: str, line: int, exc: Exception) -> ConnectorError:
    if isinstance(exc, requests.RequestException):
        reason = describe(exc)
    elif isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        reason = "the server did not answer in time"
    else:
        reason = f"the transfer broke off ({exc.args[0] if exc.args else type(exc).__name__})"
    return ConnectorError(f"reading {url} failed after line {line}: {reason}")


def _parse_date(text: str | None) -> datetime | None:
    if not text:
        return None
    text = text.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@register
class WebFeed(Connector):
    key = "webfeed"
    label = "Web feed (CSV or text list)"
    description = "Indicators from a CSV or plain-text list over HTTP(S): abuse.ch feeds, blocklists, your own lists."
    settings_form = WebFeedForm
    secret_fields = ("password",)

    def validate(self, ctx: Context) -> str:
        options = effective_options(ctx.settings)
        response = self._get(ctx)
        reader = _Reader(ctx, response, options, limit=200)
        good = bad = 0
        try:
            for record in reader.records():
                try:
                    if record.error:
                        raise Rejected(record.error)
                    normalize_any(record.type, record.value)
                    good += 1
                except Rejected:
                    bad += 1
        except _READ_ERRORS as exc:
            raise _read_failure(options["url"], reader.line, exc) from None
        finally:
            response.close()
        if good == 0 and bad:
            raise ConnectorError(
                f"none of the first {bad} values could be read as indicators: check the type and column"
            )
        return f"reachable; of the first {good + bad} values, {good} are valid indicators and {bad} would be rejected"

    def pull(self, ctx: Context) -> Iterator[Batch]:
        options = effective_options(ctx.settings)
        response = self._get(ctx)
        validators = {"etag": response.headers.get("ETag", ""), "modified": response.headers.get("Last-Modified", "")}
        cursor = ctx.cursor or {}
        resume = cursor.get("line", 0) if cursor.get("validators") == validators and any(validators.values()) else 0
        reader = _Reader(ctx, response, options, skip_to=resume)
        batch: list[Record] = []
        try:
            for record in reader.records():
                batch.append(record)
                if len(batch) >= BATCH_SIZE:
                    yield Batch(batch, {"line": reader.line, "validators": validators})
                    batch = []
        except _READ_ERRORS as exc:
            raise _read_failure(options["url"], reader.line, exc) from None
        finally:
            response.close()
        if batch or not resume:
            yield Batch(batch, {"line": reader.line, "validators": validators})

    def _get(self, ctx: Context) -> requests.Response:
        options = effective_options(ctx.settings)
        auth = None
        if ctx.settings.get("username"):
            auth = (ctx.settings["username"], ctx.secrets.get("password", ""))
        try:
            response = ctx.session.get(options["url"], stream=True, auth=auth)
        except requests.RequestException as exc:
            raise ConnectorError(f"{options['url']}: {describe(exc)}") from None
        if response.status_code in (401, 403):
            response.close()
            raise ConnectorError(
                f"{options['url']} answered {response.status_code}: check the username and password", permanent=True
            )
        if response.status_code == 404:
            response.close()
            raise ConnectorError(f"{options['url']} answered 404: no feed at that URL")
        if response.status_code >= 400:
            response.close()
            raise ConnectorError(f"{options['url']} answered {response.status_code} {response.reason}")
        return response


class _Reader:
    """Streams records out of a response without holding the feed in memory."""

    def __init__(self, ctx: Context, response: requests.Response, options: dict, *, skip_to: int = 0,
                 limit: int | None = None):
        self.options = options
        self.response = response
        self.skip_to = skip_to
        self.limit = limit
        self.line = 0
        self.kind = None if options["indicator_type"] == "detect" else options["indicator_type"]
        self.severity = ctx.settings.get("severity") or Severity.UNKNOWN
        self.tags = [tag.strip() for tag in (ctx.settings.get("tags") or "").split(",") if tag.strip()]
        # "1.10.16.0/20 ; SBL256894" (Spamhaus DROP), "198.51.100.7 # C2": a comment after the value.
        markers = {"#", ";"} | ({options["comment_prefix"]} if options["comment_prefix"] else set())
        self._inline_comment = re.compile(r"\s+(?:" + "|".join(map(re.escape, sorted(markers))) + ")")
        self.header: str | None = None  # the last header row skipped
        self.comments: list[str] = []  # comment lines before the first data line

    def records(self) -> Iterator[Record]:
        source = self._csv_records() if self.options["format"] == "csv" else self._text_records()
        produced = 0
        for record in source:
            if self.line <= self.skip_to:
                continue
            yield record
            produced += 1
            if self.limit and produced >= self.limit:
                return

    def _raw_lines(self) -> Iterator[str | None]:
        """Each physical line (LF, CRLF or CR); None for one longer than MAX_LINE."""
        self.response.raw.decode_content = True
        # urllib3 closes the response when its body is read, which a TextIOWrapper takes for a
        # closed file before it has handed out the last lines: https://urllib3.readthedocs.io/
        # en/stable/user-guide.html#using-io-wrappers-with-response-content
        self.response.raw.auto_close = False
        # utf-8-sig drops a BOM; bytes that are not UTF-8 become U+FFFD and fail as values.
        text = io.TextIOWrapper(self.response.raw, encoding="utf-8-sig", errors="replace", newline=None)
        while True:
            line = text.readline(MAX_LINE + 1)
            if not line:
                return
            if len(line) > MAX_LINE and not line.endswith("\n"):
                while (rest := text.readline(MAX_LINE)) and not rest.endswith("\n"):
                    pass
                yield None
                continue
            yield line.rstrip("\n")

    def _lines(self) -> Iterator[tuple[int, str | None]]:
        """Data lines with their numbers: comments, blank lines and header rows left out."""
        prefix = self.options["comment_prefix"] or None
        headers_left = self.options["header_rows"]
        seen_data = False
        for raw in self._raw_lines():
            self.line += 1
            if raw is None:
                yield self.line, None
                continue
            stripped = raw.strip()
            if not stripped:
                continue
            if prefix and stripped.startswith(prefix):
                if not seen_data:
                    self.comments.append(stripped[len(prefix):].strip())
                continue
            if headers_left:
                headers_left -= 1
                self.header = raw
                continue
            seen_data = True
            yield self.line, raw

    def _too_long(self, number: int) -> Record:
        return Record("", self.kind, position=number, error=f"line {number}: longer than {MAX_LINE} characters")

    def _not_text(self, number: int, value: str) -> Record | None:
        """A rejection for a value with bytes that are not UTF-8: decoded, they would make
        another indicator (a URL path keeps U+FFFD percent-encoded)."""
        if "\ufffd" not in value:
            return None
        return Record(value, self.kind, position=number,
                      error=f"line {number}: not valid UTF-8 (the value has bytes that are not text)")

    def _text_records(self) -> Iterator[Record]:
        for number, raw in self._lines():
            if raw is None:
                yield self._too_long(number)
                continue
            value = self._inline_comment.split(raw.strip(), 1)[0]
            yield self._not_text(number, value) or Record(
                value, self.kind, severity=self.severity, tags=self.tags, position=number
            )

    def _csv_records(self) -> Iterator[Record]:
        delimiter = self.options["delimiter"]
        delimiter = "\t" if delimiter.lower() == "tab" else delimiter
        value = _Column(self.options["column"])
        first_seen = _Column(self.options["first_seen_column"])
        tags = _Column(self.options["tags_column"])
        named = [column for column in (value, first_seen, tags) if column.index is None and column.spec]
        for number, raw in self._lines():
            if raw is None:
                yield self._too_long(number)
                continue
            row = next(csv.reader([raw], delimiter=delimiter), [])
            if named:
                header = self._header_row(delimiter, named)
                for column in named:
                    column.resolve(header if header is not None else row)
                named = []
                if header is None:
                    continue  # that row was the header
            cell = value.get(row)
            if cell is None or not cell.strip():
                yield Record(raw[:200], self.kind, position=number,
                             error=f"line {number}: no value in column {value.spec} ({len(row)} columns)")
                continue
            extra = tags.get(row)
            yield self._not_text(number, cell.strip()) or Record(
                cell.strip(), self.kind, first_seen=_parse_date(first_seen.get(row)), severity=self.severity,
                tags=self.tags + (extra.split(",") if extra else []), position=number,
            )

    def _header_row(self, delimiter: str, named: list[_Column]) -> list[str] | None:
        """The row naming the columns: a skipped header row, else a commented header such as
        URLhaus's "# id,dateadded,url,...", else None (the first data row is the header)."""
        if self.header is not None:
            return next(csv.reader([self.header], delimiter=delimiter))
        wanted = {column.spec.lower() for column in named}
        for comment in reversed(self.comments):
            names = [name.strip().lower() for name in next(csv.reader([comment], delimiter=delimiter), [])]
            if wanted <= set(names):
                return names
        return None
