"""Business rules: a named selection of indicators, for the sharing configurations to send."""

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q, QuerySet

from exchange.models import Indicator
from rules.exclusions import Exclusions, parse_exclusions
from rules.language import RuleError, compile_rule, validate


class BusinessRule(models.Model):
    """One named selection of indicators: an expression in the rule language, minus an exclusion list."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    expression = models.TextField(
        blank=True,
        help_text="Which indicators to select, for example: type in (md5, sha256) and reputation >= 7. "
        "Empty: every indicator.",
    )
    exclusions = models.TextField(
        blank=True,
        help_text="Values never selected, one per line: an exact value, a wildcard such as *.example.com, "
        "or a CIDR block such as 10.0.0.0/8. Lines starting with # are comments.",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        for field, check in (("expression", validate), ("exclusions", parse_exclusions)):
            try:
                check(getattr(self, field))
            except RuleError as exc:
                errors[field] = str(exc)
        if errors:
            raise ValidationError(errors)

    def q(self, now: datetime | None = None) -> Q:
        """The expression as a ``Q`` over ``Indicator`` (exclusions not applied)."""
        return compile_rule(self.expression, now=now)

    def excluded(self) -> Exclusions:
        return parse_exclusions(self.exclusions)

    def select(self, queryset: QuerySet | None = None, *, now: datetime | None = None) -> QuerySet:
        """The indicators of ``queryset`` (default: all) that the rule selects, exclusions removed."""
        selected = (Indicator.objects.all() if queryset is None else queryset).filter(self.q(now))
        exclusions = self.excluded()
        return selected.exclude(exclusions.q()) if exclusions else selected
