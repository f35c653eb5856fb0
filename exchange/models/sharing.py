"""Sharing: which indicators go where (a sharing configuration), and what went (the ledger)."""

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from exchange.fields import SealedField, WithSecrets
from exchange.models.config import PluginConfig
from exchange.models.store import Indicator


class SharingConfigQuerySet(models.QuerySet):
    def enabled(self):
        """Configurations that run on their schedule."""
        return self.filter(enabled=True)

    def fed_by(self, source: PluginConfig):
        """Enabled configurations a successful pull of ``source`` should trigger."""
        return self.enabled().filter(models.Q(source=source) | models.Q(source__isnull=True)).exclude(
            destination=source
        )


class SharingConfig(WithSecrets, models.Model):
    """One way of sharing: the indicators a source reported that a rule selects go to one
    action of one destination. A bidirectional share is two configurations."""

    class Status(models.TextChoices):
        NEVER = "", "never run"
        OK = "ok", "ok"
        ERROR = "error", "error"

    name = models.CharField(max_length=100, unique=True)
    source = models.ForeignKey(
        PluginConfig, null=True, blank=True, on_delete=models.PROTECT, related_name="shares_out",
        help_text="Only indicators this source reported. Empty: any source.",
    )
    rule = models.ForeignKey("rules.BusinessRule", on_delete=models.PROTECT, related_name="shares")
    destination = models.ForeignKey(PluginConfig, on_delete=models.PROTECT, related_name="shares_in")
    action = models.CharField(max_length=50, help_text="One of the destination connector's actions.")
    params = models.JSONField("action parameters", default=dict, blank=True, editable=False)
    secrets = SealedField(editable=False, help_text="The action's secret parameters, JSON, encrypted.")
    enabled = models.BooleanField(default=True)
    share_existing = models.BooleanField(
        "share existing matching indicators", default=True,
        help_text="Off: only indicators added or changed after this configuration was created.",
    )
    sync_interval = models.PositiveIntegerField(
        "sync interval (minutes)", default=60, validators=[MinValueValidator(1)],
        help_text="A successful pull of the source also starts this share at once.",
    )

    last_run = models.DateTimeField(null=True, blank=True, editable=False)
    last_status = models.CharField(max_length=10, choices=Status.choices, default="", blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Full-replace actions: the digest of the set last pushed, to skip a push that changes nothing.
    content_hash = models.CharField(max_length=64, blank=True, editable=False)
    # The destination connector's state for this configuration's share runs (its own, not the
    # plugin configuration's, which a pull of the same configuration may be writing).
    storage = models.JSONField(default=dict, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = SharingConfigQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "sharing configuration"

    def __str__(self) -> str:
        return self.name

    def get_action(self):
        """The destination connector's action, tuned to the destination's settings and this
        configuration's parameters."""
        return self.destination.get_connector().action(self.action, self.destination.settings, self.params)

    def target(self) -> str:
        """What this configuration writes, e.g. a list's name; two may not share it in replace mode."""
        action = self.get_action()
        return str(self.params.get(action.target_param, "")) if action.target_param else ""

    def clean(self):
        from exchange.sharing_checks import check_sharing_config

        check_sharing_config(self)


class Delivery(models.Model):
    """The ledger: where one indicator stands with one sharing configuration."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SHARED = "shared", "shared"
        FAILED = "failed", "failed"
        RETRACTED = "retracted", "retracted"

    # No index of its own: the unique (config, indicator) constraint and the (config, status) index start with it.
    config = models.ForeignKey(SharingConfig, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    # No database constraint and DO_NOTHING: when aging deletes an indicator its delivery stays,
    # with the value below, so the next share run can still retract it from the destination.
    indicator = models.ForeignKey(
        Indicator, on_delete=models.DO_NOTHING, related_name="deliveries", db_index=False, db_constraint=False
    )
    type = models.CharField(max_length=10)
    value = models.CharField(max_length=2048)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Failed attempts since the last success.")
    last_error = models.TextField(blank=True)
    next_attempt = models.DateTimeField(null=True, blank=True, help_text="A failed delivery waits until then.")
    # The indicator's `updated` when it was shared: a later change makes it due again.
    version = models.DateTimeField(null=True, blank=True)
    shared_at = models.DateTimeField(null=True, blank=True)
    retracted_at = models.DateTimeField(null=True, blank=True)
    # How often the value was taken back from the destination: a destination that cannot bring a
    # revoked object back (STIX revocation is final) publishes a re-shared value under a new id.
    retractions = models.PositiveSmallIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            # The share run's upsert target and its anti-join "not yet delivered".
            models.UniqueConstraint(fields=["config", "indicator"], name="delivery_config_indicator_uniq"),
        ]
        indexes = [
            # The EDL view (shared values of a destination), retraction, and the ledger's filters.
            models.Index(fields=["config", "status"], name="delivery_config_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.value} -> {self.config_id}"


def validate_params(action, params: dict, secrets: dict | None = None) -> dict:
    """The action's parameters, cleaned by its form (secret fields checked with ``secrets`` but
    left out), or ValidationError naming the field."""
    form = action.form(data={**params, **{name: (secrets or {}).get(name, "") for name in action.secret_fields}})
    if not form.is_valid():
        raise ValidationError(
            [f"{name}: {'; '.join(errors)}" if name != "__all__" else "; ".join(errors)
             for name, errors in form.errors.items()]
        )
    return {name: value for name, value in form.cleaned_data.items() if name not in action.secret_fields}
