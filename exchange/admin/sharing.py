"""Sharing configurations (source -> rule -> destination action) and their delivery ledger."""

import copy
import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count, Exists, OuterRef, Q
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django_q.tasks import async_task

from exchange.admin.plugins import HasErrorFilter
from exchange.admin.runs import ReadOnlyAdmin
from exchange.admin.widgets import badge, shorten
from exchange.models import Delivery, PluginConfig, Run, SharingConfig
from exchange.models.sharing import validate_params
from exchange.sharing_checks import warnings_for

PREFIX = "param_"


def destinations() -> list[tuple[PluginConfig, list]]:
    """Plugin configurations that can receive indicators, with their connector's actions."""
    found = []
    for config in PluginConfig.objects.order_by("name"):
        try:
            actions = config.get_connector().actions()
        except LookupError:
            continue
        if actions:
            found.append((config, actions))
    return found


class SharingConfigForm(forms.ModelForm):
    """The model's fields plus the action's parameters (declared by :func:`form_for`, prefixed
    ``param_``), folded into ``params``."""

    action_class = None

    class Meta:
        model = SharingConfig
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.action_class is not None:
            for name, value in (self.instance.params or {}).items():
                if PREFIX + name in self.fields:
                    self.initial[PREFIX + name] = value

    def clean(self):
        data = super().clean()
        if self.action_class is None:
            return data
        values = {name: data.get(PREFIX + name) for name in self.action_class.form.base_fields}
        try:
            params = validate_params(self.action_class, values)
        except ValidationError:
            params = None
            form = self.action_class.form(data=values)
            form.is_valid()
            for name, errors in form.errors.items():
                self.add_error(None if name == "__all__" else PREFIX + name, errors)
        if params is not None:
            self.instance.params = json.loads(json.dumps(params, cls=DjangoJSONEncoder))
        return data


def action_fields(action) -> dict[str, forms.Field]:
    return {PREFIX + name: copy.deepcopy(field) for name, field in action.form.base_fields.items()}


def form_for(action) -> type[SharingConfigForm]:
    # Class attributes, so that the admin's fieldsets see them (as for plugin configurations).
    return type(f"{type(action).__name__}SharingForm", (SharingConfigForm,), {"action_class": action,
                                                                               **action_fields(action)})


@admin.register(SharingConfig)
class SharingConfigAdmin(admin.ModelAdmin):
    list_display = ["name", "source_label", "rule", "destination", "action_label", "status_badge", "last_run",
                    "error_short", "ledger_summary", "enabled"]
    list_filter = ["enabled", HasErrorFilter, "destination", "rule"]
    list_select_related = ["source", "rule", "destination"]
    search_fields = ["name"]
    autocomplete_fields = ["source", "rule"]
    actions = ["share_now", "retry_failed", "enable", "disable"]
    readonly_fields = ["destination_label", "action_label", "status_badge", "last_run", "last_error",
                       "last_error_at", "ledger_links", "recent_runs"]

    def get_queryset(self, request):
        counts = {status: Count("deliveries", filter=Q(deliveries__status=status)) for status in Delivery.Status.values}
        running = Run.objects.filter(sharing=OuterRef("pk"), status=Run.Status.RUNNING)
        return super().get_queryset(request).annotate(**counts, is_running=Exists(running))

    # The add page first asks which destination and action; the action's parameters come next.
    def _chosen(self, request, obj=None):
        """``(destination, action)`` of the page, or ``(None, None)`` before they are chosen."""
        if obj is not None:
            destination, key = obj.destination, obj.action
        else:
            destination = PluginConfig.objects.filter(pk=request.GET.get("destination") or None).first()
            key = request.GET.get("action")
        if destination is None:
            return None, None
        try:
            return destination, destination.get_connector().action(key, destination.settings)
        except LookupError:
            return destination, None

    def get_form(self, request, obj=None, change=False, **kwargs):
        _, action = self._chosen(request, obj)
        kwargs["form"] = form_for(action) if action else SharingConfigForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        _, action = self._chosen(request, obj)
        fieldsets = [
            ("General", {"fields": ["name", "enabled", "source", "rule", "destination_label", "action_label"]}),
        ]
        if action is not None and action.form.base_fields:
            fieldsets.append(("Action parameters", {"fields": list(action_fields(action))}))
        fieldsets.append(("Schedule", {"fields": ["sync_interval", "share_existing"]}))
        if obj is not None:
            fieldsets.append(("Status", {"fields": ["status_badge", "last_run", "last_error", "last_error_at",
                                                    "ledger_links", "recent_runs"]}))
        return fieldsets

    def add_view(self, request, form_url="", extra_context=None):
        destination, action = self._chosen(request)
        if action is None:
            return TemplateResponse(request, "admin/exchange/sharingconfig/choose_action.html", {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Add sharing configuration: choose a destination and an action",
                "destinations": destinations(),
                "plugin_add": reverse("admin:exchange_pluginconfig_add"),
            })
        return super().add_view(request, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.destination, action = self._chosen(request)
            obj.action = action.key
        super().save_model(request, obj, form, change)
        for warning in warnings_for(obj):
            self.message_user(request, warning, messages.WARNING)

    def _changeform_view(self, request, object_id, form_url, extra_context):
        if object_id is None and request.method == "POST":
            # The model's clean() needs the chosen destination and action, which are not form fields.
            destination, action = self._chosen(request)
            extra_context = {**(extra_context or {}), "chosen": (destination, action)}
        return super()._changeform_view(request, object_id, form_url, extra_context)

    def get_changeform_initial_data(self, request):
        return {}

    def _get_form_for_get_fields(self, request, obj):
        return self.get_form(request, obj, fields=None)

    # Columns and read-only fields
    @admin.display(description="source")
    def source_label(self, obj):
        return obj.source or "any source"

    @admin.display(description="destination")
    def destination_label(self, obj):
        return obj.destination if obj else ""

    @admin.display(description="action")
    def action_label(self, obj):
        try:
            return obj.get_action().label
        except (LookupError, PluginConfig.DoesNotExist):
            return f"{obj.action} (not available)"

    @admin.display(description="status")
    def status_badge(self, obj):
        if getattr(obj, "is_running", False):
            return badge("running")
        return badge("disabled" if not obj.enabled else obj.last_status or "never run")

    @admin.display(description="last error")
    def error_short(self, obj):
        return shorten(obj.last_error)

    @admin.display(description="ledger")
    def ledger_summary(self, obj):
        return (f"{getattr(obj, 'shared', 0):,} shared, {getattr(obj, 'pending', 0):,} pending, "
                f"{getattr(obj, 'failed', 0):,} failed")

    @admin.display(description="ledger")
    def ledger_links(self, obj):
        changelist = reverse("admin:exchange_delivery_changelist")
        counts = dict(obj.deliveries.order_by().values_list("status").annotate(n=Count("pk")))
        return format_html_join(
            ", ", '<a href="{}?config__id__exact={}&status__exact={}">{} {}</a>',
            ((changelist, obj.pk, status, counts.get(status, 0), label) for status, label in Delivery.Status.choices),
        )

    @admin.display(description="recent runs")
    def recent_runs(self, obj):
        runs = obj.runs.order_by("-started")[:10]
        if not runs:
            return "(none yet)"
        rows = format_html_join(
            "", '<li><a href="{}">share {}</a> {}: {} shared, {} failed, {} retracted, {} pending</li>',
            ((reverse("admin:exchange_run_change", args=[run.pk]), run.pk, badge(run.status), run.shared,
              run.failed, run.retracted, run.pending) for run in runs),
        )
        return format_html('<ul style="margin:0;padding-left:1em">{}</ul>', rows)

    # Actions
    @admin.action(description="Share now", permissions=["change"])
    def share_now(self, request, queryset):
        for config in queryset:
            async_task("exchange.tasks.share", config.pk, "manual", task_name=f"share {config.name}"[:100])
            self.message_user(request, f"{config.name}: share queued; it starts when a task worker is free.")

    @admin.action(description="Retry failed deliveries now", permissions=["change"])
    def retry_failed(self, request, queryset):
        for config in queryset:
            count = config.deliveries.filter(status=Delivery.Status.FAILED).update(attempts=0, next_attempt=None)
            if count:
                async_task("exchange.tasks.share", config.pk, "manual", task_name=f"share {config.name}"[:100])
            self.message_user(request, f"{config.name}: {count} failed deliver{'y' if count == 1 else 'ies'} "
                                       f"{'queued again' if count else 'to retry'}.")

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request, queryset):
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request, queryset, enabled: bool):
        for config in queryset:
            config.enabled = enabled
            config.save(update_fields=["enabled", "updated"])  # save, not update(): the schedule follows
        self.message_user(request, f"{'Enabled' if enabled else 'Disabled'} {queryset.count()} configuration(s).")

    def response_add(self, request, obj, post_url_continue=None):
        response = super().response_add(request, obj, post_url_continue)
        if isinstance(response, HttpResponseRedirect) and "_addanother" in request.POST:
            return HttpResponseRedirect(reverse("admin:exchange_sharingconfig_add"))
        return response


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    """The ledger: where each indicator stands with each sharing configuration."""

    list_display = ["value_short", "type", "config", "status_badge", "attempts", "error_short", "shared_at",
                    "next_attempt", "updated"]
    list_filter = ["status", "config", "type"]
    search_fields = ["value"]
    list_select_related = ["config"]
    actions = ["retry"]
    show_full_result_count = False

    @admin.display(description="value", ordering="value")
    def value_short(self, obj):
        return shorten(obj.value, 80)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status)

    @admin.display(description="last error")
    def error_short(self, obj):
        return shorten(obj.last_error)

    @admin.action(description="Retry at the next share run", permissions=["view"])
    def retry(self, request, queryset):
        count = queryset.filter(status=Delivery.Status.FAILED).update(attempts=0, next_attempt=None)
        self.message_user(request, f"{count} failed deliver{'y' if count == 1 else 'ies'} will be sent again at the "
                                   "next share run.")
