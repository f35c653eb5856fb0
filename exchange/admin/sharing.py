"""Sharing configurations (source -> rule -> destination action) and their delivery ledger."""


from django import forms
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import Count, Exists, OuterRef, Q
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django_q.tasks import async_task

from exchange.admin.folded import FoldedForm, folded_fields, folded_form
from exchange.admin.plugins import HasErrorFilter
from exchange.admin.runs import ReadOnlyAdmin
from exchange.admin.widgets import ChosenFirstAdmin, badge, shorten
from exchange.models import Delivery, PluginConfig, Run, SharingConfig
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


class SharingConfigForm(FoldedForm):
    """The model's fields plus the action's parameters (declared by :func:`form_for`, prefixed
    ``param_``), folded into ``params`` and, for the action's secret fields, ``secrets``."""

    prefix_ = PREFIX
    target = "params"

    #: On the add page: the destination and the action chosen on the page before.
    chosen: tuple | None = None

    class Meta:
        model = SharingConfig
        fields = "__all__"

    def _update_errors(self, errors):
        # The model's checks name "destination" and "action", which were chosen on the page
        # before and are not fields here: show their messages at the top of the form.
        if hasattr(errors, "error_dict"):
            moved: dict[str, list] = {}
            for name, messages in errors.error_dict.items():
                moved.setdefault(name if name in self.fields else NON_FIELD_ERRORS, []).extend(messages)
            errors = ValidationError(moved)
        super()._update_errors(errors)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.chosen is not None and self.instance.pk is None:
            # Before validation: the model's checks need them, and they are not form fields.
            self.instance.destination, action = self.chosen
            self.instance.action = action.key


def action_fields(action) -> dict[str, forms.Field]:
    return folded_fields(action.form, action.secret_fields, PREFIX)


def form_for(action, destination=None) -> type[SharingConfigForm]:
    chosen = (destination, action) if destination is not None else None
    return folded_form(SharingConfigForm, action.form, action.secret_fields, chosen=chosen)


@admin.register(SharingConfig)
class SharingConfigAdmin(ChosenFirstAdmin):
    list_display = ["name", "source_label", "rule", "destination", "action_label", "status_badge", "last_run",
                    "error_short", "ledger_summary", "enabled"]
    list_filter = ["enabled", HasErrorFilter, "destination", "rule"]
    list_select_related = ["source", "rule", "destination"]
    search_fields = ["name"]
    autocomplete_fields = ["source", "rule"]
    actions = ["share_now", "retry_failed", "enable", "disable"]
    readonly_fields = ["destination_label", "action_label", "published", "status_badge", "last_run", "last_error",
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
        destination, action = self._chosen(request, obj)
        kwargs["form"] = form_for(action, destination if obj is None else None) if action else SharingConfigForm
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
            published = ["published"] if self.published(obj) else []
            fieldsets.append(("Status", {"fields": [*published, "status_badge", "last_run", "last_error",
                                                    "last_error_at", "ledger_links", "recent_runs"]}))
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
        return self._sensitive_add_view(request, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        for warning in warnings_for(obj):
            self.message_user(request, warning, messages.WARNING)

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

    @admin.display(description="published at")
    def published(self, obj):
        try:
            path = obj.destination.get_connector().published_at(obj)
        except LookupError:
            return ""
        if not path:
            return ""
        base = (obj.destination.settings.get("base_url") or "").rstrip("/")
        return format_html('<a href="{}">{}</a>', path, base + path)

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
            ", ", '<a href="{}?config__id__exact={}&amp;status__exact={}">{} {}</a>',
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
