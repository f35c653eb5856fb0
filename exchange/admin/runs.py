"""Runs with their counters, and the records they rejected."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from exchange.admin.widgets import badge, shorten
from exchange.models import RejectedRecord, Run

SHOWN_REJECTS = 50


class ReadOnlyAdmin(admin.ModelAdmin):
    """System-written rows: visible and deletable, never added or edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "config", "status_badge", "trigger", "started", "duration", "received", "created",
                    "updated", "unchanged", "rejected", "error_short"]
    list_filter = ["kind", "status", "config", "trigger"]
    list_select_related = ["config"]
    date_hierarchy = "started"
    fieldsets = [
        ("Run", {"fields": ["kind", "config", "status_badge", "trigger", "worker", "since", "started", "finished",
                            "duration"]}),
        ("Counters", {"fields": ["batches", "received", "created", "updated", "unchanged", "rejected", "shared",
                                 "failed", "deactivated", "deleted"]}),
        ("Error", {"fields": ["error"]}),
        ("Rejected records", {"fields": ["rejected_records"]}),
    ]
    readonly_fields = ["status_badge", "duration", "rejected_records"]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status)

    @admin.display(description="error")
    def error_short(self, obj):
        return shorten(obj.error)

    @admin.display(description=f"first {SHOWN_REJECTS} rejected records")
    def rejected_records(self, obj):
        rejects = obj.rejects.all()[:SHOWN_REJECTS]
        if not rejects:
            return "(none)"
        rows = format_html_join("", "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                                ((r.position, shorten(r.value, 80), r.reason) for r in rejects))
        link = reverse("admin:exchange_rejectedrecord_changelist") + f"?run__id__exact={obj.pk}"
        return format_html(
            '<table><thead><tr><th>Line/record</th><th>Value</th><th>Reason</th></tr></thead>{}</table>'
            '<a href="{}">All {} rejected records of this run</a>', rows, link, obj.rejected,
        )


@admin.register(RejectedRecord)
class RejectedRecordAdmin(ReadOnlyAdmin):
    list_display = ["run", "position", "type", "value_short", "reason"]
    list_filter = ["run__config", "type"]
    search_fields = ["value", "reason"]
    list_select_related = ["run"]
    show_full_result_count = False

    @admin.display(description="value")
    def value_short(self, obj):
        return shorten(obj.value, 80)
