"""General settings (one row) and Netskope tenants."""

import json

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from connectors.base import ConnectorError
from exchange.admin.widgets import SealedFieldsForm, sealed_form
from exchange.models import Settings, Tenant

ALERT_TYPES = [("malware", "Malware (file hashes)"), ("malsite", "Malsite (URLs and hosts)")]


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


class AlertTypesField(forms.MultipleChoiceField):
    """Check boxes; a JSON list (what the model's own form field posts) is read as well."""

    def to_python(self, value):
        if isinstance(value, list | tuple) and len(value) == 1 and str(value[0]).lstrip().startswith("["):
            try:
                value = json.loads(value[0])
            except ValueError:
                raise forms.ValidationError("Choose alert types.") from None
        return super().to_python(value)


class TenantFormBase(SealedFieldsForm):
    alert_types = AlertTypesField(
        choices=ALERT_TYPES, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="The alert types plugin configurations on this tenant may pull. None checked: all of them.",
    )

    def clean_alert_query(self) -> str:
        from connectors.netskope.alerts import parse_query

        query = self.cleaned_data["alert_query"].strip()
        try:
            parse_query(query)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return query


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = sealed_form(Tenant, {"token": "API v2 token", "v1_token": "API v1 token"}, base=TenantFormBase)
    list_display = ["name", "url", "initial_range", "use_proxy", "updated"]
    search_fields = ["name", "url"]
    actions = ["test_connection"]
    fieldsets = [
        ("General", {"fields": ["name", "url"]}),
        ("Credentials", {"fields": ["token", "clear_token", "v1_token", "clear_v1_token"]}),
        ("Alerts", {"fields": ["alert_types", "alert_query", "initial_range"],
                    "description": "Which alerts the tenant's plugin configurations pull. Query: terms such as "
                                   "severity ne 'low' and malsite_category like 'phish' (eq, ne, like; and)."}),
        ("Network", {"fields": ["use_proxy"],
                     "description": "The system proxy is set in the general settings; SSL validation too."}),
    ]

    @method_decorator(sensitive_post_parameters())
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)

    @admin.action(description="Test connection", permissions=["change"])
    def test_connection(self, request, queryset):
        from connectors.netskope import TenantClient, check_tenant, tenant_session

        for tenant in queryset:
            try:
                result = check_tenant(TenantClient(tenant, tenant_session(tenant)))
            except ConnectorError as exc:
                self.message_user(request, f"{tenant.name}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{tenant.name}: OK, {result}", messages.SUCCESS)
