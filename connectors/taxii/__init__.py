"""STIX/TAXII: pull STIX indicators from TAXII 2.0 and 2.1 collections, push to TAXII 2.1 ones.

Pull: the configured URL is an API root or a discovery URL (its default API root is used); the
collections read are the ones named (ids or titles), or every readable one. Each collection is
read page by page with ``added_after``; its position (the server's ``X-TAXII-Date-Added-Last``)
is saved with every batch in the cursor, and kept per collection in the plugin's storage
(``added_after``) for the next run, which starts there less the look-back minutes (for servers
that add objects late), or earlier if the checkpoint was moved back (a backfill). A collection
without a position starts at the initial range. See ``paging`` for fragile ``next`` tokens and
``patterns`` for what an indicator object gives.

Revoked and expired indicators give withdrawn records (``Record.withdrawn``): nothing is added,
and this source's sightings of their values expire when their batch is merged.

Push ("Add to collection"): STIX 2.1 indicators (``stix``) POSTed in envelopes within the API
root's ``max_content_length``; the status resource is polled until complete (at most
``POLL_TIMEOUT`` seconds), and each value is accepted or failed as the status says. Retraction
publishes a revoked version of the object the collection holds.
"""

import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import requests
from django import forms
from django.utils import timezone

from connectors.base import Action, Batch, Connector, ConnectorError, Context, Outbound, PushResult, Record
from connectors.registry import register
from connectors.taxii import stix
from connectors.taxii.client import (
    MEDIA_21,
    Connection,
    Server,
    auth_for,
    collections,
    excerpt,
    explained,
    fetch,
    iter_chosen,
    locate,
    names,
)
from connectors.taxii.paging import Position, read
from connectors.taxii.patterns import read_object, timestamp

log = logging.getLogger("cte.taxii")

DEFAULT_PAGE = 100
DEFAULT_MAX_CONTENT = 10_000_000  # when the API root does not say
POLL_TIMEOUT = 60.0  # seconds a push waits for the server to finish its status
POLL_FIRST, POLL_MAX = 0.25, 5.0  # seconds between status polls: from the first, doubling up to the max
READ_IDS = 50  # object ids per request when reading back what to revoke
REFUSED = (400, 413, 422)  # answers about one envelope, not about the server


class TaxiiForm(forms.Form):
    url = forms.URLField(
        label="API root or discovery URL", max_length=2000,
        help_text="e.g. https://taxii.example.com/api1/, or https://taxii.example.com/taxii2/ (its default API root).",
    )
    version = forms.ChoiceField(
        choices=[("detect", "Detect"), ("2.1", "TAXII 2.1"), ("2.0", "TAXII 2.0")], initial="detect", required=False,
    )
    auth = forms.ChoiceField(
        label="Authentication", initial="none", required=False,
        choices=[("none", "None"), ("basic", "Username and password (HTTP Basic)"), ("bearer", "Bearer token")],
    )
    username = forms.CharField(required=False, max_length=200)
    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    token = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    collections = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Collections to pull, by id or title, one per line. Empty: every collection these credentials "
                  "may read.",
    )
    page_size = forms.IntegerField(min_value=1, max_value=10_000, initial=DEFAULT_PAGE, required=False,
                                   help_text="Objects per request (a server may send fewer).")
    lookback = forms.IntegerField(
        label="Look-back (minutes)", min_value=0, max_value=7 * 24 * 60, initial=0, required=False,
        help_text="Each pull starts this much before where the last one stopped, for servers that add objects late.",
    )

    def clean(self):
        data = super().clean()
        data["version"] = data.get("version") or "detect"
        data["auth"] = data.get("auth") or "none"
        if data.get("auth") == "basic" and not data.get("username"):
            self.add_error("username", "HTTP Basic needs a username.")
        if data.get("auth") == "bearer" and not data.get("token"):
            self.add_error("token", "Give the bearer token.")
        return data


class _Refused(Exception):
    """The server refused one envelope as a whole (400, 413, 422): its objects fail, the others may go."""


class CollectionForm(forms.Form):
    collection = forms.CharField(max_length=200, help_text="The collection to add to, by id or title.")


class _Remote:
    """The server as one run sees it: where it is, its version, and taxii2-client's connection."""

    def __init__(self, ctx: Context):
        self.auth = auth_for(ctx.settings, ctx.secrets)
        version = ctx.settings.get("version") or "detect"
        self.server: Server = locate(ctx.session, self.auth, ctx.settings["url"], version)
        self.connection = Connection(ctx.session, self.auth, self.server.version)
        self.root, self.collections = collections(self.server, self.connection)

    @property
    def max_content_length(self) -> int:
        return int(self.root.max_content_length or DEFAULT_MAX_CONTENT)


@register
class Taxii(Connector):
    key = "taxii"
    label = "STIX/TAXII"
    description = "STIX indicators from TAXII 2.0/2.1 collections, and indicators added to a TAXII 2.1 collection."
    settings_form = TaxiiForm
    secret_fields = ("password", "token")

    def validate(self, ctx: Context) -> str:
        remote = _Remote(ctx)
        access = ", ".join(f"{c.title!r} ({_access(c)})" for c in remote.collections) or "none"
        pulled = [c.title for c in iter_chosen(remote.collections, names(ctx.settings.get("collections")))]
        root = remote.server.root_url
        return (f"TAXII {remote.server.version} API root {remote.root.title!r} at {root} "
                f"(largest request {remote.max_content_length:,} bytes); collections: {access}; "
                f"a pull reads: {', '.join(pulled) or 'nothing (no collection may be read)'}")

    # Pull ----------------------------------------------------------------------------------------

    def pull(self, ctx: Context) -> Iterator[Batch]:
        now = timezone.now()
        remote = _Remote(ctx)
        chosen = list(iter_chosen(remote.collections, names(ctx.settings.get("collections"))))
        if not chosen:
            raise ConnectorError("no collection at this API root may be read with these credentials", permanent=True)
        resume = ctx.cursor if isinstance(ctx.cursor, dict) and "positions" in ctx.cursor else {}
        positions = {cid: Position.from_json(data) for cid, data in resume.get("positions", {}).items()}
        done: list[str] = list(resume.get("done", []))
        stored = ctx.storage.setdefault("added_after", {})
        limit = int(ctx.settings.get("page_size") or DEFAULT_PAGE)
        withdrawn = 0
        for collection in chosen:
            if collection.id in done:
                continue
            position = positions.setdefault(collection.id, self._start(ctx, stored.get(collection.id), now))
            what = f"collection {collection.title!r} ({collection.objects_url})"

            def page(added_after, token, collection=collection):
                return fetch(collection, remote.connection, remote.server.version, added_after, limit, token)

            with explained(f"GET {collection.objects_url}"):
                for objects in read(page, position, what):
                    records, gone = _records(objects, now)
                    withdrawn += len(gone)
                    stored[collection.id] = position.after
                    yield Batch(records, {"positions": {cid: p.as_json() for cid, p in positions.items()},
                                          "done": list(done)})
            stored[collection.id] = position.after
            done.append(collection.id)
        if withdrawn:
            log.info("taxii %s: %d revoked or expired values skipped", getattr(ctx.config, "name", ""), withdrawn)

    @staticmethod
    def _start(ctx: Context, stored: str | None, now: datetime) -> Position:
        """Where a collection's reading starts: its saved position less the look-back, or the
        checkpoint if that is earlier (a backfill); without a position, the initial range."""
        initial = now - timedelta(days=getattr(ctx.config, "initial_range", 14))
        since = ctx.since or initial
        saved = timestamp(stored)
        if saved is None:
            return Position.starting(min(since, initial))
        lookback = timedelta(minutes=int(ctx.settings.get("lookback") or 0))
        return Position.starting(min(saved - lookback, since))

    # Push ----------------------------------------------------------------------------------------

    def actions(self) -> list[Action]:
        return [Action(key="add", label="Add to collection", form=CollectionForm, mode="append", types=stix.TYPES,
                       batch_items=500, target_param="collection", exclusive=False, retracts=True)]

    def push(self, ctx: Context, action: Action, params: dict, indicators: list[Outbound]) -> PushResult:
        if not indicators:
            return PushResult()
        now = timezone.now()
        result = PushResult()
        objects = []
        for item in indicators:
            try:
                objects.append((item.value, stix.indicator(item, now)))
            except ValueError as exc:
                result.failed[item.value] = str(exc)
        remote, collection = self._target(ctx, params)
        self._send(remote, collection, objects, result)
        return result

    def retract(self, ctx: Context, action: Action, params: dict, indicators: list[Outbound]) -> PushResult:
        if not indicators:
            return PushResult()
        remote, collection = self._target(ctx, params)
        result = PushResult()
        if not collection.can_read:
            reason = "the collection does not allow reading: the shared object cannot be read back to revoke it"
            return PushResult(failed=dict.fromkeys((item.value for item in indicators), reason))
        values = {stix.object_id(item.type, item.value, item.generation): item.value for item in indicators}
        current = self._current(remote, collection, list(values))
        objects = []
        for object_id, value in values.items():
            obj = current.get(object_id)
            if obj is None or obj.get("revoked") is True:
                result.accepted.append(value)  # not there, or revoked already: nothing left to take back
                continue
            try:
                objects.append((value, stix.revoked(obj)))
            except ValueError as exc:
                result.failed[value] = str(exc)
        self._send(remote, collection, objects, result)
        return result

    def _target(self, ctx: Context, params: dict):
        remote = _Remote(ctx)
        if remote.server.version != "2.1":
            raise ConnectorError("adding objects needs a TAXII 2.1 server; this one speaks TAXII 2.0", permanent=True)
        wanted = (params.get("collection") or "").strip()
        if not wanted:
            raise ConnectorError("the sharing configuration names no collection", permanent=True)
        return remote, next(iter_chosen(remote.collections, [wanted], write=True))

    def _current(self, remote: _Remote, collection, ids: list[str]) -> dict[str, dict]:
        """The latest version the collection holds of each of ``ids``."""
        found: dict[str, dict] = {}
        for start in range(0, len(ids), READ_IDS):
            token = None
            while True:
                filters = {"id": ids[start:start + READ_IDS], "limit": READ_IDS}
                if token:
                    filters["next"] = token
                with explained(f"GET {collection.objects_url}"):
                    envelope = collection.get_objects(**filters)
                for obj in envelope.get("objects") or []:
                    if isinstance(obj, dict) and obj.get("id") in ids:
                        found[obj["id"]] = obj
                token = envelope.get("next")
                if not (envelope.get("more") and token):
                    break
        return found

    def _send(self, remote: _Remote, collection, objects: list[tuple[str, dict]], result: PushResult) -> None:
        """POST ``objects`` in envelopes within the server's size limit; record each value's outcome."""
        largest = remote.max_content_length
        encoded = []
        for value, obj in objects:
            body = stix.encoded(obj)
            if len(body) + stix.ENVELOPE > largest:
                result.failed[value] = f"the object is {len(body):,} bytes: over the server's limit of {largest:,}"
            else:
                encoded.append((value, body, obj["id"]))
        by_id = {object_id: value for value, _, object_id in encoded}
        envelopes = list(stix.envelopes([(object_id, body) for _, body, object_id in encoded], largest))
        for index, (ids, body) in enumerate(envelopes):
            try:
                status = self._post(remote, collection, body)
            except _Refused as exc:  # this envelope only: the others may go
                result.failed.update({by_id[object_id]: str(exc) for object_id in ids})
                continue
            except ConnectorError as exc:
                if exc.permanent or index == 0:
                    raise
                # Earlier envelopes arrived: report them, and leave the rest to the next run.
                result.failed.update({by_id[object_id]: f"not sent: {exc}" for later, _ in envelopes[index:]
                                      for object_id in later})
                return
            _outcome(status, {object_id: by_id[object_id] for object_id in ids}, result)

    def _post(self, remote: _Remote, collection, body: bytes) -> dict:
        """POST one envelope and poll its status until complete or POLL_TIMEOUT; the last status."""
        url = collection.objects_url
        with explained(f"POST {url}"):
            try:
                status = remote.connection.post(url, headers={"Accept": MEDIA_21, "Content-Type": MEDIA_21},
                                                 data=body)
            except requests.HTTPError as exc:
                if exc.response is None or exc.response.status_code not in REFUSED:
                    raise
                detail = excerpt(exc.response)
                raise _Refused(f"the server refused the envelope: HTTP {exc.response.status_code}"
                               + (f" ({detail})" if detail else "")) from None
        deadline = time.monotonic() + POLL_TIMEOUT
        wait = POLL_FIRST
        status_url = f"{remote.server.root_url}status/{status.get('id')}/"
        while status.get("status") != "complete" and time.monotonic() + wait <= deadline:
            time.sleep(wait)
            wait = min(wait * 2, POLL_MAX)
            with explained(f"GET {status_url}"):
                status = remote.connection.get(status_url, headers={"Accept": MEDIA_21})
        return status


def _access(collection) -> str:
    rights = [name for name, allowed in (("read", collection.can_read), ("write", collection.can_write)) if allowed]
    return ", ".join(rights) or "no access"


def _records(objects: list[dict], now: datetime) -> tuple[list[Record], list[Record]]:
    """The page's records, withdrawn ones included, and the withdrawn ones alone."""
    records: list[Record] = []
    withdrawn: list[Record] = []
    for obj in objects:
        reading = read_object(obj, now)
        records.extend(reading.records)
        withdrawn.extend(Record(value, type_, withdrawn=True) for type_, value in reading.withdrawn)
    records.extend(withdrawn)
    return records, withdrawn


def _outcome(status: dict, values: dict[str, str], result: PushResult) -> None:
    """Each value's fate in a status resource (``values``: object id -> value)."""
    settled = set()
    for detail in status.get("successes") or []:
        if isinstance(detail, dict) and detail.get("id") in values:
            result.accepted.append(values[detail["id"]])
            settled.add(detail["id"])
    for detail in status.get("failures") or []:
        if isinstance(detail, dict) and detail.get("id") in values:
            message = detail.get("message") or "refused by the server (no reason given)"
            result.failed[values[detail["id"]]] = f"the server refused the object: {message}"
            settled.add(detail["id"])
    rest = [object_id for object_id in values if object_id not in settled]
    if not rest:
        return
    if status.get("status") != "complete":
        reason = f"still pending at the server after {POLL_TIMEOUT:.0f} s: sent again at the next run"
    elif status.get("success_count") == status.get("total_count") == len(values):
        result.accepted.extend(values[object_id] for object_id in rest)
        return
    else:
        reason = (f"the server accepted {status.get('success_count')} of {status.get('total_count')} objects "
                  "without saying which")
    for object_id in rest:
        result.failed[values[object_id]] = reason
