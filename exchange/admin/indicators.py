"""The store: indicators with their sightings."""

from django.contrib import admin
from django.db.models import Exists, OuterRef, Q

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


class SightingInline(admin.TabularInline):
    model = Sighting
    extra = 0
    max_num = 0
    can_delete = False
    fields = ["source", "first_seen", "last_seen", "expires_at", "reputation", "severity", "tags", "comments",
              "external_id", "hits"]
    readonly_fields = fields
    ordering = ["-last_seen"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("source")


@admin.register(Indicator)
class IndicatorAdmin(admin.ModelAdmin):
    list_display = ["value_short", "type", "active", "reputation", "severity", "source", "last_seen", "expires_at"]
    list_filter = ["type", "active", SourceFilter, "severity", "reputation"]
    search_fields = ["value"]
    search_help_text = "A value (defanged is fine): exact match on its normalized form, or the start of a value."
    list_select_related = ["source"]
    readonly_fields = ["type", "value", "first_seen", "last_seen", "expires_at", "source", "created", "updated"]
    fieldsets = [
        ("Indicator", {"fields": ["type", "value", "active"]}),
        ("Metadata", {"fields": ["reputation", "severity", "tags", "comments", "source"]}),
        ("Timeline", {"fields": ["first_seen", "last_seen", "expires_at", "created", "updated"]}),
    ]
    inlines = [SightingInline]
    ordering = ["-id"]
    list_per_page = 100
    # COUNT(*) over millions of rows on every page view is not worth the number it shows.
    show_full_result_count = False

    def has_add_permission(self, request):
        return False  # indicators come from sources (or the API), through normalize and merge

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
