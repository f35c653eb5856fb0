"""Plugin configurations: choose a connector, fill in its form, watch its runs."""

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import Exists, OuterRef
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django_q.tasks import async_task

from connectors import registry
from connectors.base import ConnectorError, Context
from connectors.http import session_for
from exchange.admin.folded import FoldedForm, folded_fields, folded_form
from exchange.admin.widgets import ChosenFirstAdmin, badge, shorten
from exchange.models import PluginConfig, Run, Sighting

PREFIX = "cfg_"


class PluginConfigForm(FoldedForm):
    """The model's fields plus, declared by :func:`form_for`, the connector's own fields
    prefixed ``cfg_``; they are folded into ``settings`` and the encrypted ``secrets``."""

    connector_class = None
    prefix_ = PREFIX
    target = "settings"

    class Meta:
        model = PluginConfig
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "ssl_verify" in self.fields:
            self.fields["ssl_verify"].widget.choices = [
                ("unknown", "Use the general setting"), ("true", "Validate"), ("false", "Do not validate"),
            ]
        if self.connector_class is not None:
            self.instance.connector = self.connector_class.key

    def check_folded(self, cleaned: dict) -> None:
        self.connector_class.check_config(self.instance, cleaned)


def connector_fields(connector_class) -> dict[str, forms.Field]:
    """The connector's form fields as admin form fields: prefixed, secrets write-only."""
    return folded_fields(connector_class.settings_form, connector_class.secret_fields, PREFIX)


def form_for(connector_class) -> type[PluginConfigForm]:
    return folded_form(PluginConfigForm, connector_class.settings_form, connector_class.secret_fields,
                       connector_class=connector_class)


class HasErrorFilter(admin.SimpleListFilter):
    title = "has error"
    parameter_name = "has_error"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(last_status=PluginConfig.Status.ERROR)
        if self.value() == "no":
            return queryset.exclude(last_status=PluginConfig.Status.ERROR)
        return queryset


class ConnectorFilter(admin.SimpleListFilter):
    title = "connector"
    parameter_name = "connector"

    def lookups(self, request, model_admin):
        return registry.choices()

    def queryset(self, request, queryset):
        return queryset.filter(connector=self.value()) if self.value() else queryset


def status_of(config: PluginConfig) -> str:
    if getattr(config, "is_running", False):
        return "running"
    if not config.enabled:
        return "disabled"
    return config.last_status or "never run"


@admin.register(PluginConfig)
class PluginConfigAdmin(ChosenFirstAdmin):
    list_display = ["name", "connector_label", "status_badge", "last_run", "error_short", "sync_interval", "enabled"]
    list_filter = [ConnectorFilter, "enabled", HasErrorFilter]
    search_fields = ["name"]
    autocomplete_fields = ["tenant"]
    actions = ["run_now", "test_connection", "reset_last_run", "enable", "disable"]
    readonly_fields = ["connector_label", "status_badge", "last_error", "last_error_at", "cursor_view",
                       "storage_view", "recent_runs", "sightings_count"]

    def get_queryset(self, request):
        running = Run.objects.filter(config=OuterRef("pk"), status=Run.Status.RUNNING)
        return super().get_queryset(request).annotate(is_running=Exists(running))

    # The add page first asks which connector, then shows that connector's form.
    def _connector_class(self, request, obj=None):
        key = obj.connector if obj else request.GET.get("connector")
        return registry.connectors().get(key)

    def get_form(self, request, obj=None, change=False, **kwargs):
        connector_class = self._connector_class(request, obj)
        kwargs["form"] = form_for(connector_class) if connector_class else PluginConfigForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        connector_class = self._connector_class(request, obj)
        general = ["name", "connector_label", "enabled"]
        if connector_class is not None and connector_class.needs_tenant:
            general.insert(2, "tenant")
        fieldsets = [
            ("General", {"fields": general}),
            ("Schedule", {"fields": ["sync_interval", "last_run", "initial_range"]}),
            ("Parameters", {"fields": ["aging_days", "reputation", "override_reputation", "use_proxy", "ssl_verify"]}),
        ]
        if connector_class is not None:
            fields = list(connector_fields(connector_class))
            fieldsets.append(("Settings", {"fields": fields, "description": connector_class.description}))
        if obj is not None:
            fieldsets.append(("Status", {"fields": ["status_badge", "last_error", "last_error_at", "cursor_view",
                                                    "storage_view", "sightings_count", "recent_runs"]}))
        return fieldsets

    def add_view(self, request, form_url="", extra_context=None):
        if self._connector_class(request) is None:
            return TemplateResponse(request, "admin/exchange/pluginconfig/choose_connector.html", {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Add plugin configuration: choose a connector",
                "connectors": sorted((cls() for cls in registry.connectors().values()), key=lambda c: c.label.lower()),
            })
        return self._sensitive_add_view(request, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if not change:
            return super().save_model(request, obj, form, change)
        # Write only what the form changed: a run that ended while the page was open keeps its
        # checkpoint, cursor and status instead of getting the page's stale copy back.
        columns = {field.name for field in obj._meta.concrete_fields}
        fields = {name for name in form.changed_data if name in columns}
        if form.folded_changed():
            fields |= {"settings", "secrets"}
        if fields:
            obj.save(update_fields=[*sorted(fields), "updated"])

    # Columns and read-only fields
    @admin.display(description="connector", ordering="connector")
    def connector_label(self, obj):
        cls = registry.connectors().get(obj.connector)
        return cls.label if cls else f"{obj.connector} (not installed)"

    @admin.display(description="status")
    def status_badge(self, obj):
        return badge(status_of(obj))

    @admin.display(description="last error")
    def error_short(self, obj):
        return shorten(obj.last_error)

    @admin.display(description="cursor")
    def cursor_view(self, obj):
        return json.dumps(obj.cursor) if obj.cursor else "(none: the next pull starts from the checkpoint)"

    @admin.display(description="storage")
    def storage_view(self, obj):
        return shorten(json.dumps(obj.storage), 300) if obj.storage else "(empty)"

    @admin.display(description="indicators reported")
    def sightings_count(self, obj):
        return Sighting.objects.filter(source=obj).count()

    @admin.display(description="recent runs")
    def recent_runs(self, obj):
        runs = obj.runs.order_by("-started")[:10]
        if not runs:
            return "(none yet)"
        rows = format_html_join(
            "", '<li><a href="{}">{} {}</a> {}: {} received, {} created, {} rejected</li>',
            ((reverse("admin:exchange_run_change", args=[run.pk]), run.get_kind_display(), run.pk,
              badge(run.status), run.received, run.created, run.rejected) for run in runs),
        )
        link = reverse("admin:exchange_run_changelist") + f"?config__id__exact={obj.pk}"
        return format_html('<ul style="margin:0;padding-left:1em">{}</ul><a href="{}">All runs</a>', rows, link)

    # Actions
    @admin.action(description="Run now", permissions=["change"])
    def run_now(self, request, queryset):
        for config in queryset:
            if not config.get_connector().can_pull:
                self.message_user(request, f"{config.name}: this connector does not pull.", messages.WARNING)
                continue
            async_task("exchange.tasks.pull", config.pk, "manual", task_name=f"pull {config.name}"[:100])
            self.message_user(request, f"{config.name}: pull queued; it starts when a task worker is free.")

    @admin.action(description="Test connection", permissions=["change"])
    def test_connection(self, request, queryset):
        for config in queryset:
            try:
                connector = config.get_connector()
                ctx = Context(config=config, settings=dict(config.settings), secrets=config.get_secrets(),
                              session=session_for(config), since=config.last_run, storage=dict(config.storage))
                result = connector.validate(ctx)
            except (ConnectorError, LookupError) as exc:
                self.message_user(request, f"{config.name}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{config.name}: OK, {result}", messages.SUCCESS)

    @admin.action(description="Reset last run (next pull uses the initial range)", permissions=["change"])
    def reset_last_run(self, request, queryset):
        count = queryset.update(last_run=None, cursor=None)
        self.message_user(request, f"Reset the checkpoint of {count} configuration(s).")
