"""Indicators from a tenant's malware and malsite alerts, through the Data Export iterator.

Each alert type has its own iterator index on the tenant (one index name per plugin
configuration, kept in its storage). A pull starts the iterator at the epoch of ``since`` and
follows ``next`` until a page is empty or ``wait_time`` > 0 (caught up: the next scheduled pull
goes on). The cursor saved with each page is a time mark, not the iterator's own position: the
pull runs a page or two ahead of what is committed (the read-ahead), and a ``next`` moves the
tenant's index whether or not the page was kept, so a killed pull that resumed with ``next``
(or ``resend``, which repeats only the last page) could lose pages. A resumed pull restarts the
iterator at the mark's epoch instead and skips the alerts of that second it already kept (their
``_id`` s are in the mark): nothing lost, nothing counted twice.
"""

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from connectors.base import Batch, ConnectorError, Record
from connectors.netskope.client import ALERTS, TenantClient

TYPES = {"malware": "Malware", "malsite": "Malsite"}
SEVERITIES = {"low", "medium", "high", "critical"}
_TERM = re.compile(r"""\s*([A-Za-z_][\w.]*)\s+(eq|ne|like)\s+(?:'([^']*)'|"([^"]*)"|(\S+))\s*""", re.I)


# The tenant's alerts filter ----------------------------------------------------------------------

def parse_query(text: str) -> list[tuple[str, str, str]]:
    """``field eq 'value' and field like 'part'`` as (field, operator, value) terms;
    ValueError naming what is wrong."""
    terms = []
    for number, part in enumerate(re.split(r"\s+and\s+", text.strip(), flags=re.I) if text.strip() else [], 1):
        match = _TERM.fullmatch(part)
        if not match:
            raise ValueError(f"term {number} ({part.strip()!r}): write field eq 'value', field ne 'value' or "
                             "field like 'part', joined with and")
        field, operator = match.group(1), match.group(2).lower()
        value = next(group for group in match.groups()[2:] if group is not None)
        terms.append((field, operator, value))
    return terms


def matches(alert: dict, terms: list[tuple[str, str, str]]) -> bool:
    for field, operator, value in terms:
        actual = alert.get(field)
        texts = [str(item) for item in actual] if isinstance(actual, list) else [] if actual is None else [str(actual)]
        if operator == "eq" and value not in texts:
            return False
        if operator == "ne" and value in texts:
            return False
        if operator == "like" and not any(value.lower() in text.lower() for text in texts):
            return False
    return True


# Alerts to records ----------------------------------------------------------------------------

def _when(alert: dict) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(alert["timestamp"]), UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None


def _severity(alert: dict) -> str | None:
    value = str(alert.get("severity") or "").strip().lower()
    return value if value in SEVERITIES else None


def _host_type(host: str) -> str:
    if re.fullmatch(r"[0-9.]+", host):
        return "ipv4"
    return "ipv6" if ":" in host else "hostname"


def _excerpt(alert: dict) -> str:
    text = json.dumps(alert, sort_keys=True, default=str)
    return text if len(text) <= 300 else text[:299] + "…"


def malware_records(alert: dict, tenant: str) -> list[Record]:
    """MD5 and SHA256 of the file a malware alert names (``md5``/``local_md5``, ``sha256``/``local_sha256``)."""
    what = " ".join(str(alert[key]) for key in ("malware_name", "malware_type") if alert.get(key))
    on = f" in {alert['file_name']}" if alert.get("file_name") else ""
    common = {"first_seen": _when(alert), "last_seen": _when(alert), "severity": _severity(alert),
              "tags": [str(alert["malware_type"])] if alert.get("malware_type") else [],
              "comments": f"Netskope tenant {tenant}: malware alert{': ' + what if what else ''}{on}",
              "external_id": str(alert.get("_id") or "")}
    records = []
    for kind in ("md5", "sha256"):
        values = dict.fromkeys(str(alert[key]).strip() for key in (kind, f"local_{kind}") if alert.get(key))
        records += [Record(value, kind, **common) for value in values]
    return records or [Record(_excerpt(alert), error="a malware alert without md5 or sha256: nothing to take")]


def malsite_records(alert: dict, tenant: str) -> list[Record]:
    """The URL of a malsite alert and its host (``hostname`` is the user's device: never taken)."""
    url = str(alert.get("url") or "").strip()
    if not url:
        return [Record(_excerpt(alert), error="a malsite alert without url: nothing to take")]
    categories = alert.get("malsite_category") or []
    common = {"first_seen": _when(alert), "last_seen": _when(alert), "severity": _severity(alert),
              "tags": [str(item) for item in (categories if isinstance(categories, list) else [categories])],
              "comments": f"Netskope tenant {tenant}: malsite alert"
                          + (f" on {alert['site']}" if alert.get("site") else ""),
              "external_id": str(alert.get("_id") or "")}
    records = [Record(url, "url", **common)]
    try:
        host = urlsplit(url if "://" in url else "http://" + url).hostname
    except ValueError:
        host = None
    if host:
        records.append(Record(host, _host_type(host), **common))
    return records


RECORDS = {"malware": malware_records, "malsite": malsite_records}


# The iterator ---------------------------------------------------------------------------------

@dataclass
class Mark:
    """Where a pull of one alert type stands: the latest alert second kept, and the ids of
    the alerts of that second already kept."""

    epoch: int
    seen: frozenset[str] = frozenset()

    def kept(self, alert: dict) -> bool:
        return _epoch(alert) == self.epoch and _id(alert) in self.seen

    def after(self, alerts: list[dict]) -> "Mark":
        latest = max([self.epoch, *(_epoch(alert) for alert in alerts)])
        seen = set(self.seen) if latest == self.epoch else set()
        seen.update(_id(alert) for alert in alerts if _epoch(alert) == latest)
        return Mark(latest, frozenset(seen))

    def as_cursor(self) -> dict:
        return {"epoch": self.epoch, "seen": sorted(self.seen)}


def _epoch(alert: dict) -> int:
    try:
        return int(alert.get("timestamp") or 0)
    except (TypeError, ValueError):
        return 0


def _id(alert: dict) -> str:
    return str(alert.get("_id") or json.dumps(alert, sort_keys=True, default=str))


def index_name(config, storage: dict) -> str:
    """The iterator index (the tenant's "consumer") of this plugin configuration: stable,
    and unique even across installations that share a tenant."""
    if not storage.get("index"):
        storage["index"] = f"cte_{config.pk}_{secrets.token_hex(4)}"
    return storage["index"]


class AlertPull:
    """One pull of a configuration's alert types from its tenant."""

    def __init__(self, client: TenantClient, index: str, types: list[str], query: str = ""):
        self.client, self.index, self.types = client, index, types
        try:
            self.terms = parse_query(query)
        except ValueError as exc:
            raise ConnectorError(f"tenant {client.name}: the alerts query is invalid: {exc}", permanent=True) from None

    def run(self, since: datetime, cursor: dict | None) -> Iterator[Batch]:
        cursor = dict(cursor or {})
        for alert_type in self.types:
            state = cursor.get(alert_type)
            if state and state.get("done"):
                continue
            mark = Mark(state["epoch"], frozenset(state["seen"])) if state else Mark(int(since.timestamp()))
            for batch in self._pages(alert_type, mark, cursor):
                cursor = batch.cursor
                yield batch

    def _pages(self, alert_type: str, mark: Mark, cursor: dict) -> Iterator[Batch]:
        operation: str = str(mark.epoch)
        while True:
            page = self.page(alert_type, operation)
            operation = "next"
            alerts = [alert for alert in page["result"] if not mark.kept(alert)]
            mark = mark.after(page["result"])
            done = not page["result"] or page["wait_time"] > 0
            cursor = {**cursor, alert_type: {"done": True} if done else mark.as_cursor()}
            yield Batch(self.records(alert_type, alerts), cursor)
            if done:
                return

    def page(self, alert_type: str, operation: str) -> dict:
        path = ALERTS + alert_type
        what = f"reading {alert_type} alerts"
        response = self.client.v2("GET", path, scope=path, what=what,
                                  params={"index": self.index, "operation": operation})
        page = self.client.json(response, what)
        if response.status_code != 200 or not isinstance(page, dict) or not isinstance(page.get("result"), list):
            detail = page.get("message") if isinstance(page, dict) else page
            raise ConnectorError(f"tenant {self.client.name} refused the {alert_type} alerts iterator "
                                 f"(operation {operation}): {detail}")
        try:
            page["wait_time"] = int(page.get("wait_time") or 0)
        except (TypeError, ValueError):
            page["wait_time"] = 0
        return page

    def records(self, alert_type: str, alerts: list[dict]) -> list[Record]:
        make = RECORDS[alert_type]
        records = []
        for alert in alerts:
            if not isinstance(alert, dict):
                records.append(Record(str(alert)[:300], error=f"a {alert_type} alert that is not a JSON object"))
            elif matches(alert, self.terms):
                records += make(alert, self.client.name)
        return records


def start_of(since: datetime | None, initial_range: int) -> datetime:
    return since or datetime.now(UTC) - timedelta(days=initial_range)
