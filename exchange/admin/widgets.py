"""Small pieces the admin modules share: write-only secret fields and status badges."""

from django import forms
from django.contrib import admin
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters

from exchange.fields import SecretFormField

_COLOURS = {
    "ok": "#2e7d32", "success": "#2e7d32", "error": "#c62828", "failed": "#c62828",
    "running": "#1565c0", "disabled": "#757575", "never run": "#546e7a",
}


def badge(text: str) -> str:
    colour = _COLOURS.get(text, "#546e7a")
    return format_html(
        '<span style="background:{};color:#fff;padding:1px 7px;border-radius:9px;font-size:11px;'
        'white-space:nowrap">{}</span>', colour, text,
    )


def shorten(text: str, length: int = 80) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= length else text[: length - 1] + "…"


def secret_field(label: str, help_text: str = "") -> SecretFormField:
    return SecretFormField(label=label, help_text=help_text)


def clear_field(label: str) -> forms.BooleanField:
    return forms.BooleanField(label=f"Clear the stored {label.lower()}", required=False)


class SealedFieldsForm(forms.ModelForm):
    """A ModelForm whose ``SealedField`` s (named in ``sealed``) each come with a "clear" box,
    declared on the subclass as ``clear_<name>``; the inputs themselves are write-only."""

    sealed: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.sealed:
            if name not in self.fields:
                continue
            if getattr(self.instance, name, None):
                self.fields[name].help_text = "A value is stored. Leave blank to keep it."
            else:
                self.fields[f"clear_{name}"].widget = forms.HiddenInput()

    def _post_clean(self):
        super()._post_clean()
        for name in self.sealed:
            if self.cleaned_data.get(f"clear_{name}") and not self.cleaned_data.get(name):
                setattr(self.instance, name, "")


def sealed_form(model, names: dict[str, str], base=SealedFieldsForm) -> type[SealedFieldsForm]:
    """A form class for ``model`` with a "clear" box for each sealed field ``{name: label}``."""
    attrs = {"sealed": tuple(names), "Meta": type("Meta", (), {"model": model, "fields": "__all__"})}
    for name, label in names.items():
        attrs[f"clear_{name}"] = clear_field(label)
    return type(f"{model.__name__}Form", (base,), attrs)


class ChosenFirstAdmin(admin.ModelAdmin):
    """For configurations whose add page first asks a choice (a connector, an action), whose
    forms carry secrets, and which have an ``enabled`` flag their schedule follows: the Enable and
    Disable actions, "Save and add another" going back to the choice, and add and change views
    that keep posted secrets out of error reports (``add_view`` calls ``_sensitive_add_view``
    once the choice is made)."""

    @method_decorator(sensitive_post_parameters())
    def _sensitive_add_view(self, request, form_url="", extra_context=None):
        return super().add_view(request, form_url, extra_context)

    @method_decorator(sensitive_post_parameters())
    def change_view(self, request, object_id, form_url="", extra_context=None):
        return super().change_view(request, object_id, form_url, extra_context)

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
            opts = self.model._meta
            return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
        return response
