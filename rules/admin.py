"""Business rules: the expression and exclusion list, checked on save with the error on its field."""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from exchange.models import PluginConfig
from rules.exclusions import entry_lines
from rules.models import BusinessRule
from rules.preview import SAMPLES, preview

_CODE = {"style": "font-family: monospace; width: 60em", "spellcheck": "false"}


class BusinessRuleForm(forms.ModelForm):
    class Meta:
        model = BusinessRule
        fields = "__all__"
        widgets = {
            "expression": forms.Textarea(attrs={**_CODE, "rows": 6}),
            "exclusions": forms.Textarea(attrs={**_CODE, "rows": 10}),
        }


class PreviewForm(forms.Form):
    source = forms.ModelChoiceField(PluginConfig.objects.order_by("name"), required=False, empty_label="any source",
                                    help_text="Only indicators this source reported.")
    destination = forms.ModelChoiceField(
        PluginConfig.objects.order_by("name"), required=False, empty_label="no destination",
        help_text="Compare with what this destination holds: what a share would add, and take back.",
    )


@admin.register(BusinessRule)
class BusinessRuleAdmin(admin.ModelAdmin):
    form = BusinessRuleForm
    list_display = ["name", "short_expression", "exclusion_count", "preview_link", "updated"]
    search_fields = ["name", "description", "expression"]
    fieldsets = [
        ("General", {"fields": ["name", "description"]}),
        ("Selection", {"fields": ["expression", "exclusions"]}),
    ]

    def get_urls(self):
        view = self.admin_site.admin_view(self.preview_view)
        return [path("<int:rule_id>/preview/", view, name="rules_businessrule_preview"), *super().get_urls()]

    def preview_view(self, request, rule_id: int):
        """What the rule selects now, and against a destination what a share would change. Reads only."""
        rule = get_object_or_404(BusinessRule, pk=rule_id)
        if not self.has_view_permission(request, rule):
            raise PermissionDenied
        form = PreviewForm(request.GET or None)
        choice = form.cleaned_data if form.is_valid() else {}
        return TemplateResponse(request, "admin/rules/businessrule/preview.html", {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": rule,
            "title": f"Preview: {rule}",
            "form": form,
            "result": preview(rule, source=choice.get("source"), destination=choice.get("destination")),
            "samples": SAMPLES,
        })

    @admin.display(description="preview")
    def preview_link(self, rule: BusinessRule) -> str:
        return format_html('<a href="{}">Preview</a>', reverse("admin:rules_businessrule_preview", args=[rule.pk]))

    @admin.display(description="expression")
    def short_expression(self, rule: BusinessRule) -> str:
        # One line: a rule written over several lines would make a tall row.
        return Truncator(" ".join(rule.expression.split())).chars(80) or "(every indicator)"

    @admin.display(description="exclusions")
    def exclusion_count(self, rule: BusinessRule) -> int:
        return sum(1 for _ in entry_lines(rule.exclusions))
