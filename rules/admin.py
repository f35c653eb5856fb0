"""Business rules: the expression and exclusion list, checked on save with the error on its field."""

from django import forms
from django.contrib import admin
from django.utils.text import Truncator

from rules.exclusions import entry_lines
from rules.models import BusinessRule

_CODE = {"style": "font-family: monospace; width: 60em", "spellcheck": "false"}


class BusinessRuleForm(forms.ModelForm):
    class Meta:
        model = BusinessRule
        fields = "__all__"
        widgets = {
            "expression": forms.Textarea(attrs={**_CODE, "rows": 6}),
            "exclusions": forms.Textarea(attrs={**_CODE, "rows": 10}),
        }


@admin.register(BusinessRule)
class BusinessRuleAdmin(admin.ModelAdmin):
    form = BusinessRuleForm
    list_display = ["name", "short_expression", "exclusion_count", "updated"]
    search_fields = ["name", "description", "expression"]
    fieldsets = [
        ("General", {"fields": ["name", "description"]}),
        ("Selection", {"fields": ["expression", "exclusions"]}),
    ]

    @admin.display(description="expression")
    def short_expression(self, rule: BusinessRule) -> str:
        # One line: a rule written over several lines would make a tall row.
        return Truncator(" ".join(rule.expression.split())).chars(80) or "(every indicator)"

    @admin.display(description="exclusions")
    def exclusion_count(self, rule: BusinessRule) -> int:
        return sum(1 for _ in entry_lines(rule.exclusions))
