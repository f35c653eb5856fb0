"""General settings (one row) and Netskope tenants."""

from django.contrib import admin
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from exchange.admin.widgets import sealed_form
from exchange.models import Settings, Tenant


@admin.register(Settings)
class SettingsAdmin(admin.ModelAdmin):
    form = sealed_form(Settings, {"proxy_password": "Proxy password"})
    fieldsets = [
        ("Threat Exchange", {"fields": ["module_enabled", "delete_inactive_after"]}),
        ("Proxy", {"fields": ["proxy_url", "proxy_username", "proxy_password", "clear_proxy_password"]}),
        ("Security", {"fields": ["ssl_verify"]}),
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        # One row: the list is only a way to its page.
        settings = Settings.load()
        return redirect(reverse("admin:exchange_settings_change", args=[settings.pk]))

    @method_decorator(sensitive_post_parameters())
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = sealed_form(Tenant, {"token": "API v2 token", "v1_token": "API v1 token"})
    list_display = ["name", "url", "initial_range", "use_proxy", "updated"]
    search_fields = ["name", "url"]
    fieldsets = [
        ("General", {"fields": ["name", "url"]}),
        ("Credentials", {"fields": ["token", "clear_token", "v1_token", "clear_v1_token"]}),
        ("Alerts", {"fields": ["alert_types", "alert_query", "initial_range"]}),
        ("Network", {"fields": ["use_proxy"]}),
    ]

    @method_decorator(sensitive_post_parameters())
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)
