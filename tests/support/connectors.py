"""A scripted source for tests of the pull loop: its settings say what each batch holds,
where to fail, and how slowly to go. Registered under the key "scripted"."""

import time

from django import forms

from connectors.base import Batch, Connector, ConnectorError, Record
from connectors.registry import register


class ScriptedForm(forms.Form):
    token = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))


@register
class Scripted(Connector):
    """settings: {"batches": [[value, ...], ...], "type": None|type, "fail_at": i, "crash_at": i,
    "permanent": bool, "pause": seconds, "last_seen": iso}. The cursor is the next batch's index."""

    key = "scripted"
    label = "Scripted test source"
    settings_form = ScriptedForm
    secret_fields = ("token",)

    def validate(self, ctx):
        if ctx.settings.get("fail_at") is not None:
            raise ConnectorError("scripted failure")
        return f"{len(ctx.settings.get('batches', []))} batches"

    def pull(self, ctx):
        settings = ctx.settings
        ctx.storage["since_seen"] = ctx.since.isoformat() if ctx.since else None
        ctx.storage["started_at_cursor"] = ctx.cursor
        for index in range(ctx.cursor or 0, len(settings["batches"])):
            if settings.get("fail_at") == index:
                raise ConnectorError(f"scripted failure at batch {index}", permanent=settings.get("permanent", False))
            if settings.get("crash_at") == index:
                raise ValueError(f"unexpected answer at batch {index}")
            if settings.get("pause"):
                time.sleep(settings["pause"])
            records = [
                Record(value, settings.get("type"), last_seen=_parse(settings.get("last_seen")))
                for value in settings["batches"][index]
            ]
            ctx.storage["batches_read"] = ctx.storage.get("batches_read", 0) + 1
            yield Batch(records, cursor=index + 1)


def _parse(text):
    from datetime import datetime

    return datetime.fromisoformat(text) if text else None
