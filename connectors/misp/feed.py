"""MISP feed: the events of a MISP feed folder served over HTTP(S) (pull only).

A MISP feed is a folder of static files: ``manifest.json`` maps each event's UUID to its
metadata (``info``, ``timestamp`` of its last change, ``Tag``, ...), and ``<uuid>.json`` holds
the event (``{"Event": {..., "Attribute": [...], "Object": [{..., "Attribute": [...]}]}}``).
A pull reads the manifest, then only the events changed since the checkpoint (oldest first),
one file at a time, and maps their attributes and their objects' attributes as the REST pull
does (``connectors.misp.mapping``). An event whose manifest entry carries the loop-prevention
tag is not even fetched.

A broken event does not stop the pull: a file the manifest lists but the server does not have
(404), or one that is cut short or otherwise not JSON, becomes a rejected record named after
the file with the reason, and the pull goes on with the next event. A server that fails (5xx,
a broken connection) fails the run, which resumes at that event next time.

``hashes.csv`` is not read: it lists an MD5 digest of each attribute's value with its event's
UUID, for MISP's correlation look-ups; it carries neither the values nor their types, so it
cannot stand in for the event files.

The cursor is the last event done, in (timestamp, UUID) order, and how many records of the
next one were merged: a killed pull resumes after what it merged. An event that enters a feed
with a timestamp older than the checkpoint (copied from elsewhere) is not seen: ``backfill``
re-reads the range.
"""

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import requests
from django import forms

from connectors.base import Batch, Connector, ConnectorError, Context, Record
from connectors.http import describe
from connectors.misp.mapping import PullForm, PullOptions, attribute_records, epoch, event_attributes, tag_names
from connectors.misp.push import DEFAULT_TAG
from connectors.registry import register

BATCH_SIZE = 5000
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class MispFeedForm(PullForm):
    field_order = ["url", "types", "include_non_ids"]

    url = forms.URLField(
        label="Feed URL", max_length=2000, assume_scheme="https",
        help_text="The feed's folder, the one that holds manifest.json (e.g. https://www.circl.lu/doc/misp/feed-osint/).",
    )
    loop_tag = forms.CharField(
        label="Loop-prevention tag", required=False, max_length=100, initial=DEFAULT_TAG,
        help_text="Events and attributes with this tag are left out: CTE shared them to the MISP publishing the feed.",
    )
    username = forms.CharField(required=False, max_length=200, help_text="Basic authentication, if the feed asks.")
    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))

    def clean_loop_tag(self) -> str:
        return self.cleaned_data["loop_tag"].strip() or DEFAULT_TAG


def folder(url: str) -> str:
    """The feed folder's URL with its trailing slash (a URL ending in manifest.json is accepted)."""
    url = url.strip()
    url = url[: -len("manifest.json")] if url.endswith("/manifest.json") else url
    return url if url.endswith("/") else url + "/"


class _Feed:
    """One feed's HTTP side: the manifest and the event files."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.base = folder(ctx.settings.get("url") or "")
        username = ctx.settings.get("username")
        self.auth = (username, ctx.secrets.get("password") or "") if username else None

    def get(self, name: str) -> requests.Response:
        url = self.base + name
        try:
            response = self.ctx.session.get(url, auth=self.auth)
        except requests.exceptions.ChunkedEncodingError:
            raise ConnectorError(f"{url}: the transfer broke off before the end of the file") from None
        except requests.RequestException as exc:
            raise ConnectorError(f"{url}: {describe(exc)}") from None
        if response.status_code in (401, 403):
            raise ConnectorError(f"{url} answered {response.status_code}: check the username and password",
                                 permanent=True)
        if response.status_code >= 400 and response.status_code != 404:
            raise ConnectorError(f"{url} answered {response.status_code} {response.reason}")
        return response

    def manifest(self) -> dict:
        response = self.get("manifest.json")
        url = self.base + "manifest.json"
        if response.status_code == 404:
            raise ConnectorError(f"{url} answered 404: no MISP feed there (give the folder that holds manifest.json)")
        try:
            manifest = json.loads(response.content)
        except ValueError as exc:
            raise ConnectorError(f"{url} is not valid JSON ({exc}): not a MISP feed, or a transfer cut short") from None
        if not isinstance(manifest, dict):
            raise ConnectorError(f"{url} is not a MISP feed manifest (an object of event UUIDs was expected)")
        return manifest

    def event(self, uuid: str) -> dict | Record:
        """The event of ``<uuid>.json``, or a Record with why it cannot be read."""
        name = f"{uuid}.json"
        response = self.get(quote(name))
        if response.status_code == 404:
            return Record(name, error=f"event file {self.base}{name} is missing (HTTP 404): the manifest lists it, "
                                      "the server does not have it")
        try:
            data = json.loads(response.content)
        except ValueError as exc:
            return Record(name, error=f"event file {self.base}{name} is not valid JSON ({exc}): "
                                      "cut short or damaged at the source")
        if not isinstance(data, dict) or not isinstance(data.get("Event"), dict):
            return Record(name, error=f"event file {self.base}{name} holds no MISP event (no \"Event\" object)")
        return data["Event"]


def _due(manifest: dict, start: int, skip_tag: str) -> tuple[list[tuple[int, str]], list[Record]]:
    """The (timestamp, UUID) of the events changed since ``start``, oldest first, and what is
    wrong with the manifest's entries."""
    due, broken = [], []
    for uuid, entry in manifest.items():
        if not _UUID.fullmatch(str(uuid)) or not isinstance(entry, dict):
            broken.append(Record(str(uuid)[:200], error=f"manifest entry {str(uuid)[:80]!r} is not an event UUID "
                                                         "with its metadata"))
            continue
        changed = epoch(entry.get("timestamp"))
        if changed is None:
            broken.append(Record(f"{uuid}.json", error=f"manifest entry {uuid} has no valid timestamp"))
        elif changed.timestamp() >= start and skip_tag not in tag_names(entry):
            due.append((int(changed.timestamp()), str(uuid)))
    return sorted(due), broken


def _cursor(start: int, after: tuple | None, partial: list | None) -> dict:
    """Resume after event ``after``, skipping ``partial[2]`` records of event ``partial[:2]``."""
    return {"since": start, "after": list(after) if after else None, "partial": partial}


@register
class MispFeed(Connector):
    key = "misp_feed"
    label = "MISP feed (folder over HTTP)"
    description = "Pulls the events of a MISP feed (manifest.json and one file per event) over HTTP(S)."
    settings_form = MispFeedForm
    secret_fields = ("password",)

    def validate(self, ctx: Context) -> str:
        feed = _Feed(ctx)
        manifest = feed.manifest()
        since = datetime.now(UTC) - timedelta(days=ctx.config.initial_range)
        due, broken = _due(manifest, int(since.timestamp()), "")
        times = [epoch(entry.get("timestamp")) for entry in manifest.values() if isinstance(entry, dict)]
        newest = max((moment for moment in times if moment), default=None)
        summary = f"{feed.base}manifest.json lists {len(manifest)} events"
        if newest:
            summary += f", the newest changed {newest:%Y-%m-%d %H:%M} UTC"
        summary += f"; {len(due)} changed in the last {ctx.config.initial_range} days"
        return summary + (f"; {len(broken)} manifest entries are unreadable" if broken else "")

    def pull(self, ctx: Context) -> Iterator[Batch]:
        feed = _Feed(ctx)
        options = PullOptions.of({**ctx.settings, "loop_tag": ctx.settings.get("loop_tag") or DEFAULT_TAG})
        since = ctx.since or datetime.now(UTC) - timedelta(days=ctx.config.initial_range)
        start = int(since.timestamp())
        # Resume a cursor whose run covered at least this one's range, and keep its start: without a
        # checkpoint, the initial range moves with each attempt.
        cursor = ctx.cursor if isinstance(ctx.cursor, dict) and isinstance(ctx.cursor.get("since"), int) else {}
        cursor = cursor if cursor and cursor["since"] <= start else {}
        start = cursor.get("since", start)
        after = tuple(cursor["after"]) if cursor.get("after") else None
        partial = tuple(cursor["partial"]) if cursor.get("partial") else None
        due, broken = _due(feed.manifest(), start, options.skip_tag)
        batch: list[Record] = [] if after or partial else broken
        for key in due:
            if after and key <= after:
                continue
            records = self._records(feed, key[1], options)
            offset = partial[2] if partial and key == tuple(partial[:2]) else 0
            while offset < len(records):
                room = BATCH_SIZE - len(batch)
                batch += records[offset:offset + room]
                offset = min(offset + room, len(records))
                if len(batch) >= BATCH_SIZE:
                    done = offset >= len(records)
                    yield Batch(batch, _cursor(start, key if done else after, None if done else [*key, offset]))
                    batch = []
            after = key
        yield Batch(batch, _cursor(start, after, None))

    def _records(self, feed: _Feed, uuid: str, options: PullOptions) -> list[Record]:
        event = feed.event(uuid)
        if isinstance(event, Record):
            return [event]
        tags = tag_names(event)
        return [record for attribute in event_attributes(event)
                for record in attribute_records(attribute, event, options, event_tags=tags)]
