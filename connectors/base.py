"""The connector contract: what every source and destination implements.

A connector reads like a short story: its settings form, ``validate``, ``pull``, ``actions``,
``push``. It talks HTTP only through ``ctx.session`` (see ``connectors.http``) and raises
:class:`ConnectorError` for anything a person must fix.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

import requests
from django import forms


class ConnectorError(Exception):
    """A failure a person must see. ``permanent`` ones (bad credentials, a missing
    resource) disable the configuration instead of failing again at every tick."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


@dataclass(slots=True)
class Record:
    """One raw indicator as a source gave it; the ingest normalizes and merges it.

    ``type`` None means "detect from the value". ``error`` marks a record the connector
    could not even read (a broken CSV line): it is rejected with that reason, and kept.
    ``withdrawn`` marks a value the source no longer vouches for (a revoked or expired STIX
    indicator): nothing is added, and this source's sighting of it expires (exchange.withdraw).
    """

    value: Any
    type: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    reputation: int | None = None
    severity: str | None = None
    tags: list[str] = field(default_factory=list)
    comments: str = ""
    external_id: str = ""
    position: int | None = None
    error: str = ""
    withdrawn: bool = False


@dataclass(slots=True)
class Batch:
    """Records plus the cursor to resume after them if the run stops here."""

    records: list[Record]
    cursor: Any = None


@dataclass
class Context:
    """What a connector gets for one run.

    ``storage`` is a dict the connector may change, saved when the run succeeds: the plugin
    configuration's own for a pull, the sharing configuration's for a share run (so that a pull
    and a share of one configuration never overwrite each other's). ``run_id`` is the Run's id.
    """

    config: Any  # exchange.models.PluginConfig
    settings: dict
    secrets: dict
    session: requests.Session
    since: datetime | None = None
    cursor: Any = None
    storage: dict = field(default_factory=dict)
    run_id: int | None = None


@dataclass(frozen=True)
class Action:
    """Something a destination can do with indicators (e.g. "add to URL list").

    ``mode`` "append" adds what is new and retracts what no longer qualifies; "replace" sends
    the whole current set at every run (skipped when its content is unchanged). ``max_items``
    and ``max_bytes`` bound the whole target (a list's capacity): what does not fit stays
    pending, highest reputation and most recent first. ``batch_items`` and ``batch_bytes``
    bound one request. ``target_param`` names the parameter that identifies the target (a
    list's name); two sharing configurations may not write one target in replace mode, nor
    in append mode when ``exclusive``. ``secret_fields`` name fields of ``form`` that are
    secrets (e.g. a published list's password): stored encrypted on the sharing configuration,
    never rendered, and not part of ``params``.
    """

    key: str
    label: str
    form: type[forms.Form] = forms.Form
    mode: Literal["append", "replace"] = "append"
    types: tuple[str, ...] = ()
    max_items: int | None = None
    max_bytes: int | None = None
    batch_items: int = 1000
    batch_bytes: int | None = None
    target_param: str | None = None
    exclusive: bool = False
    retracts: bool = False
    secret_fields: tuple[str, ...] = ()


@dataclass(slots=True)
class Outbound:
    """One indicator on its way to a destination, as the share run hands it to ``push``."""

    type: str
    value: str
    reputation: int = 5
    severity: str = "unknown"
    tags: list[str] = field(default_factory=list)
    comments: str = ""
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    expires_at: datetime | None = None
    #: How often this value was retracted from this destination before: where a withdrawal is
    #: final (a revoked STIX object), a value shared again must be published under a new id.
    generation: int = 0

    def as_dict(self) -> dict:
        """JSON-ready form (ISO 8601 times) for connectors that post indicators as JSON."""
        data = {name: getattr(self, name) for name in self.__slots__ if name != "generation"}
        for name in ("first_seen", "last_seen", "expires_at"):
            data[name] = data[name].isoformat() if data[name] else None
        return data


@dataclass
class PushResult:
    """Which values a destination accepted, and which it refused with why."""

    accepted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class Connector:
    """Base class: subclass, set the class attributes, implement what the system supports."""

    key: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str] = ""
    settings_form: ClassVar[type[forms.Form]] = forms.Form
    #: Names of settings_form fields that are secrets: stored encrypted, never rendered.
    secret_fields: ClassVar[tuple[str, ...]] = ()
    can_pull: ClassVar[bool] = True
    needs_tenant: ClassVar[bool] = False

    def validate(self, ctx: Context) -> str:
        """Check the connection and settings; return what was checked, or raise ConnectorError."""
        raise NotImplementedError

    def pull(self, ctx: Context) -> Iterator[Batch]:
        """Yield batches of records that arrived since ``ctx.since``, resuming at ``ctx.cursor``."""
        raise NotImplementedError

    def actions(self) -> list[Action]:
        """What this connector can do as a destination; none for a pure source."""
        return []

    def action(self, key: str, settings: dict | None = None, params: dict | None = None) -> Action:
        """The action ``key``, tuned to a destination's settings and a sharing configuration's
        action parameters; LookupError if there is none."""
        for action in self.actions():
            if action.key == key:
                return self.tune(action, settings or {}, params or {})
        raise LookupError(f"the {self.label} connector has no action {key!r}")

    def tune(self, action: Action, settings: dict, params: dict) -> Action:
        """Adjust an action's limits to one destination (``settings``) and one sharing
        configuration (``params``, e.g. a maximum list size it chose)."""
        return action

    @property
    def can_push(self) -> bool:
        return bool(self.actions())

    def push(self, ctx: Context, action: Action, params: dict, indicators: list[Outbound]) -> PushResult:
        """Send one batch (append mode) or the whole set (replace mode); say per value what the
        destination accepted and what it refused, with why. Raise ConnectorError when the
        destination cannot be reached at all."""
        raise NotImplementedError

    def retract(self, ctx: Context, action: Action, params: dict, indicators: list[Outbound]) -> PushResult:
        """Remove values shared earlier (actions with ``retracts``); ``accepted`` are gone."""
        raise NotImplementedError

    def finish(self, ctx: Context, action: Action, params: dict) -> None:
        """Called once after a share run's pushes (e.g. to deploy pending changes)."""

    def check_sharing(self, config, action: Action) -> None:
        """Checks of a sharing configuration writing to this connector beyond its action's form
        (e.g. a name unique across destinations, a credential it needs); raise
        forms.ValidationError. ``config.params`` are cleaned; ``config.get_secrets()`` holds the
        action's secret fields."""

    def published_at(self, config) -> str:
        """For a destination this app serves itself (a list, a collection): the path where the
        sharing configuration ``config`` publishes; empty for the others."""
        return ""

    @classmethod
    def check_config(cls, config, settings: dict) -> None:
        """Checks that need the database, e.g. a name unique across configurations; raise
        forms.ValidationError. ``config`` is the PluginConfig being saved."""

    @classmethod
    def clean_settings(cls, values: dict) -> dict:
        """Validate settings with the connector's form; raise forms.ValidationError with its errors."""
        form = cls.settings_form(data=values)
        if not form.is_valid():
            raise forms.ValidationError(
                [f"{name}: {'; '.join(errors)}" if name != "__all__" else "; ".join(errors)
                 for name, errors in form.errors.items()]
            )
        return form.cleaned_data
