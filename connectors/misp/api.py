"""MISP instance: pull attributes over the REST API, and share indicators as MISP events.

Pull: ``POST /attributes/restSearch`` with ``returnFormat: json``, the MISP types that give the
chosen CTE types, ``to_ids: true`` (unless the configuration also wants the others), the
attributes changed in ``timestamp: [from, to]``, ``tags: ["!<loop tag>"]`` (what CTE shared
there stays out), ``includeEventTags``, and ``limit``/``page``; it stops at a page shorter than
the limit. Attributes of MISP objects are attributes too: the search returns them alike.

The window is fixed when a pull starts: from the checkpoint (or the initial range) to that
moment, kept in the cursor with the next page, so a pull that stops resumes by asking MISP the
very same question from the page it had reached; then it reads what changed since that window
closed, up to the resumed run's start (the next checkpoint), so nothing falls in between. MISP
pages by offset: an attribute edited while a pull reads its window leaves the window (its new
timestamp comes in the next window) and can shift the later pages by one; that is MISP's
paging, which has no keyset.

Share: the "Create event" action (see ``connectors.misp.push``).
"""

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from django import forms

from connectors.base import Action, Batch, Connector, ConnectorError, Context, Outbound, PushResult
from connectors.misp import push as sharing
from connectors.misp.client import MispClient
from connectors.misp.mapping import CTE_TYPES, PullForm, PullOptions, attribute_records, misp_types_for
from connectors.registry import register

DEFAULT_PAGE = 1000  # attributes per search page, as Netskope CE asks for them
MAX_PAGE = 10_000


class MispForm(PullForm):
    field_order = ["url", "api_key", "types", "include_non_ids"]

    url = forms.URLField(
        label="MISP URL", max_length=2000, assume_scheme="https",
        help_text="MISP's base address, e.g. https://misp.example.org",
    )
    api_key = forms.CharField(
        label="API key", required=False, widget=forms.PasswordInput(render_value=False),
        help_text="An auth key of a MISP user allowed to use the API (sharing needs a role that may add events).",
    )
    published_only = forms.BooleanField(
        label="Only published events", required=False, help_text="Leave out attributes of events still in draft.",
    )
    loop_tag = forms.CharField(
        label="Loop-prevention tag", required=False, max_length=100, initial=sharing.DEFAULT_TAG,
        help_text="Put on every event and attribute CTE shares to this MISP, and left out of its pulls, so shared "
                  "indicators do not come back as MISP's sightings.",
    )
    page_size = forms.IntegerField(
        label="Attributes per search page", required=False, min_value=1, max_value=MAX_PAGE, initial=DEFAULT_PAGE,
    )
    batch_size = forms.IntegerField(
        label="Attributes per request when sharing", required=False, min_value=1, max_value=sharing.MAX_BATCH,
        initial=sharing.DEFAULT_BATCH,
    )

    def clean_loop_tag(self) -> str:
        return self.cleaned_data["loop_tag"].strip() or sharing.DEFAULT_TAG

    def clean_page_size(self) -> int:
        return self.cleaned_data["page_size"] or DEFAULT_PAGE

    def clean_batch_size(self) -> int:
        return self.cleaned_data["batch_size"] or sharing.DEFAULT_BATCH


def page_size(settings: dict) -> int:
    return min(max(int(settings.get("page_size") or DEFAULT_PAGE), 1), MAX_PAGE)


def search_query(settings: dict, window: dict, limit: int, page: int) -> dict:
    """The ``attributes/restSearch`` body for one page of ``window``."""
    options = PullOptions.of({**settings, "loop_tag": sharing.loop_tag(settings)})
    query = {"returnFormat": "json", "type": misp_types_for(options.types),
             "timestamp": [window["from"], window["to"]], "includeEventTags": True}
    if not options.include_non_ids:
        query["to_ids"] = True
    if settings.get("published_only"):
        query["published"] = True
    query["tags"] = [f"!{options.skip_tag}"]
    return {**query, "limit": limit, "page": page}


def _fingerprint(settings: dict) -> str:
    """Identifies the question a cursor's pages answer: other filters mean other pages."""
    query = search_query(settings, {"from": 0, "to": 0}, page_size(settings), 0)
    return hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()[:16]


def _window(ctx: Context) -> tuple[dict, bool]:
    """The window and page to start from, and whether it is a saved one being resumed.

    A saved cursor is resumed when it asked the same filters and its run covered at least what
    this one must (``since``: the first window's start). Without a checkpoint, ``since`` moves
    with every attempt (the initial range back from now): the resumed run keeps the first one's.
    """
    since = ctx.since or datetime.now(UTC) - timedelta(days=ctx.config.initial_range)
    start, fingerprint = int(since.timestamp()), _fingerprint(ctx.settings)
    cursor = ctx.cursor if isinstance(ctx.cursor, dict) else {}
    if (cursor.get("filter") == fingerprint and isinstance(cursor.get("since"), int) and cursor["since"] <= start
            and all(isinstance(cursor.get(key), int) for key in ("from", "to", "page"))):
        return cursor, True
    return {"since": start, "from": start, "to": int(time.time()), "page": 1, "filter": fingerprint}, False


def _client(ctx: Context) -> MispClient:
    if not ctx.secrets.get("api_key"):
        raise ConnectorError("no API key is set: give the key of a MISP user allowed to use the API", permanent=True)
    return MispClient(ctx)


@register
class Misp(Connector):
    key = "misp"
    label = "MISP instance (REST API)"
    description = ("Pulls IDS attributes from a MISP instance's REST API, and shares indicators to it as MISP "
                   "events tagged so that they do not come back.")
    settings_form = MispForm
    secret_fields = ("api_key",)

    def validate(self, ctx: Context) -> str:
        client = _client(ctx)
        version = client.version()
        since = datetime.now(UTC) - timedelta(days=ctx.config.initial_range)
        window = {"from": int(since.timestamp()), "to": int(time.time())}
        found = client.search_attributes(search_query(ctx.settings, window, 1, 1))
        tag = sharing.loop_tag(ctx.settings)
        tagged = "exists" if client.tag_exists(tag) else "will be created by the first share (tag editor permission)"
        what = "finds attributes" if found else "finds no attribute yet"
        return (f"MISP {version} at {client.base}: the API key works; the search {what} to pull from the last "
                f"{ctx.config.initial_range} days; the loop-prevention tag {tag!r} {tagged}")

    def pull(self, ctx: Context) -> Iterator[Batch]:
        client = _client(ctx)
        options = PullOptions.of({**ctx.settings, "loop_tag": sharing.loop_tag(ctx.settings)})
        window, resumed = _window(ctx)
        yield from self._pages(client, ctx.settings, options, window)
        if resumed:  # the saved window closed when the stopped run started: read on to now
            yield from self._pages(client, ctx.settings, options,
                                   {**window, "from": window["to"], "to": int(time.time()), "page": 1})

    def _pages(self, client: MispClient, settings: dict, options: PullOptions, window: dict) -> Iterator[Batch]:
        """The pages of one window from ``window["page"]`` on, each with the cursor after it."""
        limit, page = page_size(settings), window["page"]
        while True:
            attributes = client.search_attributes(search_query(settings, window, limit, page))
            records = [record for attribute in attributes if isinstance(attribute, dict)
                       for record in attribute_records(attribute, attribute.get("Event") or {}, options)]
            page += 1
            yield Batch(records, {**window, "page": page})
            if len(attributes) < limit:
                return

    def actions(self) -> list[Action]:
        return [Action(key="create_event", label="Create event", form=sharing.CreateEventForm, mode="append",
                       types=CTE_TYPES, batch_items=sharing.DEFAULT_BATCH)]

    def tune(self, action: Action, settings: dict, params: dict) -> Action:
        return replace(action, batch_items=sharing.batch_size(settings))

    def push(self, ctx: Context, action: Action, params: dict, indicators: list[Outbound]) -> PushResult:
        _client(ctx)
        result = PushResult()
        size = sharing.batch_size(ctx.settings)
        for start in range(0, len(indicators), size):
            try:
                part = sharing.push(ctx, params, indicators[start:start + size])
            except ConnectorError as exc:
                if exc.permanent or start == 0:
                    raise
                # What MISP saved stays saved: report it, and leave the rest to the next run.
                result.failed.update(dict.fromkeys((item.value for item in indicators[start:]), f"not sent: {exc}"))
                return result
            result.accepted += part.accepted
            result.failed.update(part.failed)
        return result

    def finish(self, ctx: Context, action: Action, params: dict) -> None:
        sharing.finish(ctx, params)
