"""The "Create event" action: indicators become attributes of one MISP event per share run.

A share run calls ``push`` once per batch, then ``finish`` once. The first push of a run creates
the event (``POST /events/add``: title, date, distribution, threat level, analysis, tags) unless
the action names an existing event; every batch then goes to that event with
``POST /attributes/add/{event id}`` and a list of attributes. The run's event id lives in
``ctx.storage`` under the sharing configuration's name until ``finish`` forgets it; a run that
fails never saves its storage, so the next run starts a new event.

The event and every attribute carry the loop-prevention tag (created in MISP first if it is
missing, as MISP drops a tag it cannot create without a word), so a pull from the same MISP
leaves them out. Attributes have ``to_ids`` set.

``attributes/add`` with a list saves what it can and answers 200 with the saved attributes
plus ``"errors": {"attribute_<index>": {field: [reasons]}}`` for the refused ones; when it saves
none it answers 403 with the same errors (for a single attribute, its errors alone). Each
refused value fails with MISP's reason; "A similar attribute already exists for this event"
counts as shared: the value is there.
"""

from datetime import UTC, datetime, timedelta

from django import forms
from django.conf import settings

from connectors.base import ConnectorError, Context, Outbound, PushResult
from connectors.misp.client import MispClient, body_of, message_of, validation_errors
from connectors.misp.mapping import EMAIL_ATTRIBUTE_TYPES, IP_ATTRIBUTE_TYPES, to_attribute

DEFAULT_BATCH = 2500  # attributes per request, as Netskope CE sends them
MAX_BATCH = 10_000
DEFAULT_TAG = "cte:shared"
TAG_COLOUR = "#0b6e99"
RUNS_KEY = "misp_run_events"
DUPLICATE = "A similar attribute already exists for this event"


class CreateEventForm(forms.Form):
    event_info = forms.CharField(
        label="Event title", max_length=200, initial="Indicators shared by CTE",
        help_text="Each share run creates one event with this title and the run's date and time.",
    )
    event_id = forms.CharField(
        label="Existing event", required=False, max_length=36,
        help_text="Optional: add every run's indicators to this event (its id or UUID) instead of creating events.",
    )
    distribution = forms.ChoiceField(initial="0", choices=[
        ("0", "Your organisation only"), ("1", "This community only"), ("2", "Connected communities"),
        ("3", "All communities")])
    threat_level_id = forms.ChoiceField(label="Threat level", initial="4", choices=[
        ("1", "High"), ("2", "Medium"), ("3", "Low"), ("4", "Undefined")])
    analysis = forms.ChoiceField(initial="0", choices=[("0", "Initial"), ("1", "Ongoing"), ("2", "Completed")])
    ip_attribute = forms.ChoiceField(
        label="IP addresses as", initial="ip-dst", choices=[(name, name) for name in IP_ATTRIBUTE_TYPES])
    email_attribute = forms.ChoiceField(
        label="Email addresses as", initial="email-src", choices=[(name, name) for name in EMAIL_ATTRIBUTE_TYPES])
    event_tags = forms.CharField(
        required=False, max_length=500,
        help_text="Tags for the events, comma-separated (e.g. tlp:amber); the loop-prevention tag is always added.",
    )
    publish = forms.BooleanField(
        required=False, help_text="Publish the event at the end of each run (MISP then syncs it and may notify users).",
    )

    def clean_event_id(self) -> str:
        value = self.cleaned_data["event_id"].strip()
        if value and not (value.isdigit() or _looks_like_uuid(value)):
            raise forms.ValidationError("An event id (digits) or UUID.")
        return value


def _looks_like_uuid(value: str) -> bool:
    parts = value.split("-")
    return [len(part) for part in parts] == [8, 4, 4, 4, 12] and all(
        char in "0123456789abcdefABCDEF" for char in value.replace("-", ""))


def loop_tag(settings_: dict) -> str:
    return (settings_.get("loop_tag") or "").strip() or DEFAULT_TAG


def batch_size(settings_: dict) -> int:
    return min(max(int(settings_.get("batch_size") or DEFAULT_BATCH), 1), MAX_BATCH)


def push(ctx: Context, params: dict, indicators: list[Outbound]) -> PushResult:
    """Add ``indicators`` to this run's event (created by the run's first push)."""
    client = MispClient(ctx)
    event_id = _run_event(ctx, client, params)
    tag = loop_tag(ctx.settings)
    attributes = [to_attribute(item, params, tag) for item in indicators]
    response = client.send("POST", f"/attributes/add/{event_id}", attributes)
    return _outcome(client, response, event_id, [item.value for item in indicators], bool(params.get("event_id")))


def finish(ctx: Context, params: dict) -> None:
    """End of the run: publish its event if asked, and forget it."""
    entry = ctx.storage.get(RUNS_KEY, {}).pop(params.get("sharing") or "", None)
    if not ctx.storage.get(RUNS_KEY):
        ctx.storage.pop(RUNS_KEY, None)
    if entry and params.get("publish"):
        MispClient(ctx).call("POST", f"/events/publish/{entry['event']}")


def _run_event(ctx: Context, client: MispClient, params: dict) -> str:
    """The event this run writes: the configured one, or the one its first push created."""
    runs = ctx.storage.setdefault(RUNS_KEY, {})
    sharing = params.get("sharing") or ""
    entry = runs.get(sharing)
    if entry and not _stale(entry):
        return entry["event"]
    tag = loop_tag(ctx.settings)
    if not client.tag_exists(tag):
        client.add_tag(tag, TAG_COLOUR)
    event_id = params.get("event_id") or _create_event(client, params, tag)
    runs[sharing] = {"event": str(event_id), "since": datetime.now(UTC).isoformat()}
    return str(event_id)


def _stale(entry: dict) -> bool:
    """An entry no running share can own (older than the task timeout): left by a crash, ignored."""
    try:
        since = datetime.fromisoformat(entry["since"])
    except (KeyError, TypeError, ValueError):
        return True
    return datetime.now(UTC) - since > timedelta(seconds=settings.Q_CLUSTER["timeout"])


def _create_event(client: MispClient, params: dict, tag: str) -> str:
    now = datetime.now(UTC)
    tags = [tag, *(name.strip() for name in (params.get("event_tags") or "").split(",") if name.strip())]
    event = {
        "info": f"{params.get('event_info') or 'Indicators shared by CTE'} ({now:%Y-%m-%d %H:%M} UTC)",
        "date": now.date().isoformat(), "distribution": str(params.get("distribution") or "0"),
        "threat_level_id": str(params.get("threat_level_id") or "4"), "analysis": str(params.get("analysis") or "0"),
        "published": False, "Tag": [{"name": name} for name in dict.fromkeys(tags)],
    }
    response = client.send("POST", "/events/add", {"Event": event})
    body = body_of(response)
    if response.status_code == 403 and isinstance(body, dict) and body.get("errors"):
        raise ConnectorError(f"MISP refused to create the event: {validation_errors(body['errors'])}",
                             permanent=True)
    if response.status_code != 200:
        raise client.failure("POST", "/events/add", response)
    event_id = ((body or {}).get("Event") or {}).get("id") if isinstance(body, dict) else None
    if not event_id:
        raise ConnectorError(f"POST {client.url('/events/add')} answered without the new event's id: "
                             f"{message_of(response)}")
    return str(event_id)


def _outcome(client: MispClient, response, event_id: str, values: list[str], configured: bool) -> PushResult:
    """Which values MISP saved and which it refused, with its reasons."""
    body = body_of(response)
    errors = body.get("errors") if isinstance(body, dict) else None
    if response.status_code == 403 and errors:
        if len(values) == 1 and not any(str(key).startswith("attribute_") for key in errors):
            errors = {"attribute_0": errors}  # a single attribute's errors come alone
    elif response.status_code == 404 and configured:
        raise ConnectorError(f"MISP has no event {event_id} that this API key's user may see "
                             f"({message_of(response)}): check the action's existing event", permanent=True)
    elif response.status_code != 200:
        raise client.failure("POST", f"/attributes/add/{event_id}", response)
    refused = _refusals(errors if isinstance(errors, dict) else {}, values)
    return PushResult(accepted=[value for value in values if value not in refused], failed=refused)


def _refusals(errors: dict, values: list[str]) -> dict[str, str]:
    refused = {}
    for key, reasons in errors.items():
        index = str(key).removeprefix("attribute_")
        if not index.isdigit() or int(index) >= len(values):
            continue
        reason = validation_errors(reasons)
        if DUPLICATE.lower() not in reason.lower():
            refused[values[int(index)]] = f"MISP refused it: {reason}"
    return refused
