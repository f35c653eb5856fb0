"""Runs of pulls, shares and aging, with the records they rejected."""

from django.db import models


class Run(models.Model):
    """One pull, share, aging or callback run, with its counters and, if it failed, why."""

    class Kind(models.TextChoices):
        PULL = "pull", "pull"
        SHARE = "share", "share"
        AGING = "aging", "aging"
        CALLBACK = "callback", "callback"

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        SUCCESS = "success", "success"
        FAILED = "failed", "failed"

    config = models.ForeignKey(
        "exchange.PluginConfig", null=True, blank=True, on_delete=models.CASCADE, related_name="runs"
    )
    sharing = models.ForeignKey(
        "exchange.SharingConfig", null=True, blank=True, on_delete=models.CASCADE, related_name="runs"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=20, blank=True, help_text="schedule, manual, backfill, ...")
    started = models.DateTimeField()
    finished = models.DateTimeField(null=True, blank=True)
    since = models.DateTimeField(null=True, blank=True, help_text="The start of the range this pull fetched.")
    received = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    withdrawn = models.PositiveIntegerField(
        default=0, help_text="Values the source revoked or let expire: its sightings of them expired.")
    shared = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    retracted = models.PositiveIntegerField(default=0)
    pending = models.PositiveIntegerField(default=0, help_text="Left pending: over the target's capacity.")
    deactivated = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    batches = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the process that ran it")

    class Meta:
        ordering = ["-started"]
        indexes = [
            # The plugin configuration page's "recent runs" and the still-running check.
            models.Index(fields=["config", "-started"], name="run_config_started_idx"),
            models.Index(fields=["sharing", "-started"], name="run_sharing_started_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def duration(self):
        return self.finished - self.started if self.finished else None


class RejectedRecord(models.Model):
    """A record a run could not accept, with the reason a person can act on."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="rejects")
    position = models.PositiveIntegerField(help_text="Line or record number within the run's input.")
    type = models.CharField(max_length=10, blank=True, help_text="The type the source claimed, if any.")
    value = models.TextField(help_text="The raw value, cut at 1,000 characters.")
    reason = models.TextField()

    class Meta:
        ordering = ["run", "position"]

    def __str__(self) -> str:
        return self.reason
