"""The store: indicators with their sightings."""

from datetime import datetime

from django.contrib import admin
from django.db.models import Exists, OuterRef, Q
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime

from exchange.admin.widgets import shorten
from exchange.models import Indicator, PluginConfig, Sighting
from exchange.normalize import Rejected, normalize_any


class SourceFilter(admin.SimpleListFilter):
    """Indicators reported by a source (any sighting), not only those it owns."""

    title = "source"
    parameter_name = "source"

    def lookups(self, request, model_admin):
        return list(PluginConfig.objects.values_list("pk", "name"))

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(Exists(Sighting.objects.filter(indicator=OuterRef("pk"), source_id=self.value())))
        return queryset


# Sightings are keyed by (indicator, source), which the admin's inlines do not handle: the
# indicator page shows them as a read-only table instead (they only ever come from the merge).
SIGHTING_COLUMNS = [("source", "source"), ("first_seen", "first seen"), ("last_seen", "last seen"),
                    ("expires_at", "expires"), ("reputation", "reputation"), ("severity", "severity"),
                    ("tags", "tags"), ("comments", "comments"), ("external_id", "external id"), ("hits", "hits")]


def _cell(sighting: Sighting, field: str) -> str:
    value = getattr(sighting, field)
    if field == "source":
        return value.name
    if field == "tags":
        return ", ".join(value)
    if field == "expires_at" and value is None:
        return "never"
    if isinstance(value, datetime):
        return date_format(localtime(value), "DATETIME_FORMAT")
    return shorten(str(value), 200)


def sightings_table(indicator: Indicator) -> str:
    sightings = indicator.sightings.select_related("source").order_by("-last_seen")
    if not sightings:
        return "none"
    head = format_html_join("", "<th>{}</th>", ((label,) for _, label in SIGHTING_COLUMNS))
    rows = format_html_join("", "<tr>{}</tr>", (
        (format_html_join("", "<td>{}</td>", ((_cell(sighting, field),) for field, _ in SIGHTING_COLUMNS)),)
        for sighting in sightings))
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, rows)


@admin.register(Indicator)
class IndicatorAdmin(admin.ModelAdmin):
    list_display = ["value_short", "type", "active", "reputation", "severity", "source", "last_seen", "expires_at"]
    list_filter = ["type", "active", SourceFilter, "severity", "reputation"]
    search_fields = ["value"]
    search_help_text = "A value (defanged is fine): exact match on its normalized form, or the start of a value."
    list_select_related = ["source"]
    readonly_fields = ["type", "value", "first_seen", "last_seen", "expires_at", "source", "created", "updated",
                       "sightings"]
    fieldsets = [
        ("Indicator", {"fields": ["type", "value", "active"]}),
        ("Metadata", {"fields": ["reputation", "severity", "tags", "comments", "source"]}),
        ("Timeline", {"fields": ["first_seen", "last_seen", "expires_at", "created", "updated"]}),
        ("Sightings", {"fields": ["sightings"], "description": "Each source's own report of this indicator."}),
    ]
    ordering = ["-id"]
    list_per_page = 100
    # COUNT(*) over millions of rows on every page view is not worth the number it shows.
    show_full_result_count = False

    def has_add_permission(self, request):
        return False  # indicators come from sources (or the API), through normalize and merge

    @admin.display(description="by source")
    def sightings(self, obj):
        return sightings_table(obj) if obj.pk else "none"

    @admin.display(description="value", ordering="value")
    def value_short(self, obj):
        return shorten(obj.value, 100)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(value__startswith=term)
        try:
            kind, value = normalize_any(None, term)
            match |= Q(type=kind, value=value)
        except Rejected:
            pass
        return queryset.filter(match), False
