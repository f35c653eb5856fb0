"""The store: one row per indicator, one per (indicator, source) sighting."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone


class IndicatorType(models.TextChoices):
    URL = "url", "URL"
    DOMAIN = "domain", "domain"
    HOSTNAME = "hostname", "hostname"
    IPV4 = "ipv4", "IPv4"
    IPV6 = "ipv6", "IPv6"
    CIDR = "cidr", "CIDR"
    MD5 = "md5", "MD5"
    SHA1 = "sha1", "SHA-1"
    SHA256 = "sha256", "SHA-256"
    EMAIL = "email", "email"


class Severity(models.TextChoices):
    UNKNOWN = "unknown", "unknown"
    LOW = "low", "low"
    MEDIUM = "medium", "medium"
    HIGH = "high", "high"
    CRITICAL = "critical", "critical"

    @classmethod
    def rank(cls, value: str) -> int:
        return [choice.value for choice in cls].index(value)


MAX_VALUE_LENGTH = 2048  # also the longest URL accepted: keeps (type, value) within a B-tree entry


class IndicatorQuerySet(models.QuerySet):
    def active(self):
        """Indicators that have not aged out."""
        return self.filter(active=True)

    def of_type(self, *types: str):
        return self.filter(type__in=types)

    def expired(self, now=None):
        """Active indicators whose latest sighting expiry has passed: the aging sweep's work."""
        return self.filter(active=True, expires_at__lte=now or timezone.now())


class Indicator(models.Model):
    """One indicator of compromise, unique on (type, normalized value), with its metadata."""

    type = models.CharField(max_length=10, choices=IndicatorType.choices)
    value = models.CharField(max_length=MAX_VALUE_LENGTH)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    active = models.BooleanField(default=True)
    reputation = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.UNKNOWN)
    tags = models.JSONField(default=list, blank=True)
    comments = models.TextField(blank=True)
    # The source whose metadata (reputation, severity, tags, comments) the indicator carries.
    # No index: only the rare deletion of a plugin configuration looks rows up by it. No database
    # constraint (see Sighting.indicator); Django applies SET_NULL when a configuration is deleted.
    source = models.ForeignKey(
        "exchange.PluginConfig", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", db_index=False, db_constraint=False,
    )
    created = models.DateTimeField(default=timezone.now, editable=False)
    updated = models.DateTimeField(default=timezone.now, editable=False)

    objects = IndicatorQuerySet.as_manager()

    class Meta:
        constraints = [
            # The merge's ON CONFLICT target and every lookup by value.
            models.UniqueConstraint(fields=["type", "value"], name="indicator_type_value_uniq"),
        ]

    def __str__(self) -> str:
        return self.value


class Sighting(models.Model):
    """One source's report of an indicator: provenance, with that source's own view of it."""

    # Keyed by (indicator, source), the merge's ON CONFLICT target and "which sources reported
    # this indicator": no id column and no index of its own to write for every new indicator
    # (benchmarks/ingest.py). The admin does not edit models with a composite key: the indicator
    # page shows its sightings as a table (exchange/admin/indicators.py).
    pk = models.CompositePrimaryKey("indicator", "source")
    # No database foreign keys here: PostgreSQL checks them row by row, which cost a quarter of a
    # bulk merge (benchmarks/ingest.py). The merge writes sightings only by joining their
    # indicators, and deletions cascade through the ORM, as Django does for every relation.
    # No separate index on indicator: the key starts with it. None on source: "indicators a source
    # reported" goes through the key too, from the indicator side, and deleting a configuration
    # (a full scan) is rare.
    indicator = models.ForeignKey(
        Indicator, on_delete=models.CASCADE, related_name="sightings", db_index=False, db_constraint=False
    )
    source = models.ForeignKey(
        "exchange.PluginConfig", on_delete=models.CASCADE, related_name="sightings", db_index=False,
        db_constraint=False,
    )
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    reputation = models.PositiveSmallIntegerField(default=5)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.UNKNOWN)
    tags = models.JSONField(default=list, blank=True)
    comments = models.TextField(blank=True)
    external_id = models.CharField(max_length=255, blank=True)
    hits = models.PositiveIntegerField(default=1, help_text="Reports of this indicator that brought new information.")
    created = models.DateTimeField(default=timezone.now, editable=False)
    updated = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"{self.indicator_id} by {self.source_id}"
