"""Test connectors: a scripted source for the pull loop (its settings say what each batch holds,
where to fail, and how slowly to go; key "scripted"), and a recording destination for the share
run (key "recorder")."""

import time
from dataclasses import replace

from django import forms

from connectors.base import Action, Batch, Connector, ConnectorError, PushResult, Record
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


# A destination for tests of the share run -------------------------------------------------------

#: What each Recorder configuration (by pk) received: [(call, action key, [values])] in order.
RECEIVED: dict[int, list[tuple[str, str, list[str]]]] = {}


class ListForm(forms.Form):
    list = forms.CharField(max_length=100, help_text="The target list's name.")


class RecorderSettings(forms.Form):
    max_items = forms.IntegerField(required=False, min_value=1)


@register
class Recorder(Connector):
    """A destination that keeps what it is sent in ``RECEIVED`` and answers as its settings say:
    {"refuse": {value: reason}, "refuse_retract": {value: reason}, "down": "message",
    "permanent": bool, "max_items": n, "batch_items": n, "batch_bytes": n}. Actions: "add"
    (append, retracts), "add_once" (append, one writer per list), "replace" (full replace)."""

    key = "recorder"
    label = "Recording test destination"
    settings_form = RecorderSettings
    can_pull = False

    def validate(self, ctx):
        return "records what it is sent"

    def actions(self):
        return [
            Action("add", "Add to a list", form=ListForm, mode="append", retracts=True, target_param="list"),
            Action("add_once", "Add to a list of its own", form=ListForm, mode="append", retracts=True,
                   target_param="list", exclusive=True),
            Action("replace", "Replace a list", form=ListForm, mode="replace", target_param="list"),
        ]

    def tune(self, action, settings, params):
        return replace(action, max_items=settings.get("max_items") or action.max_items,
                       batch_items=settings.get("batch_items") or action.batch_items,
                       batch_bytes=settings.get("batch_bytes") or action.batch_bytes)

    def push(self, ctx, action, params, indicators):
        return self._answer(ctx, "push", action, indicators, ctx.settings.get("refuse", {}))

    def retract(self, ctx, action, params, indicators):
        return self._answer(ctx, "retract", action, indicators, ctx.settings.get("refuse_retract", {}))

    def finish(self, ctx, action, params):
        RECEIVED.setdefault(ctx.config.pk, []).append(("finish", action.key, []))

    def _answer(self, ctx, call, action, indicators, refuse):
        if ctx.settings.get("down"):
            raise ConnectorError(ctx.settings["down"], permanent=ctx.settings.get("permanent", False))
        values = [item.value for item in indicators]
        RECEIVED.setdefault(ctx.config.pk, []).append((call, action.key, values))
        return PushResult(accepted=[v for v in values if v not in refuse],
                          failed={v: refuse[v] for v in values if v in refuse})
