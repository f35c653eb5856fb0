"""What an administrator configures: general settings, Netskope tenants, plugin configurations."""

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from exchange.fields import SealedField, WithSecrets, reveal


class Settings(models.Model):
    """The one row of general settings (Cloud Exchange's "Settings > General")."""

    proxy_url = models.CharField(
        "proxy URL", max_length=500, blank=True, help_text="e.g. http://proxy.example.com:3128"
    )
    proxy_username = models.CharField(max_length=200, blank=True)
    proxy_password = SealedField()
    ssl_verify = models.BooleanField(
        "validate SSL certificates", default=True,
        help_text="The default for plugin configurations that do not choose.",
    )
    module_enabled = models.BooleanField(
        "Threat Exchange module enabled", default=True,
        help_text="Off: no pull, share or aging runs, scheduled or manual.",
    )
    delete_inactive_after = models.PositiveIntegerField(
        "delete inactive indicators after (days)", default=0,
        help_text="0 keeps inactive indicators for ever.",
    )
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "general settings"

    def __str__(self) -> str:
        return "General settings"

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> "Settings":
        return cls.objects.get_or_create(pk=1)[0]

    def clean(self):
        if self.proxy_url:
            parts = urlsplit(self.proxy_url)
            if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
                raise ValidationError({"proxy_url": "Give a URL such as http://proxy.example.com:3128."})
            if parts.username or parts.password:
                raise ValidationError({"proxy_url": "Put the credentials in the username and password fields."})

    def proxy(self) -> str | None:
        """The proxy URL with its credentials, or None when no proxy is configured."""
        if not self.proxy_url:
            return None
        if not self.proxy_username:
            return self.proxy_url
        from urllib.parse import quote

        parts = urlsplit(self.proxy_url)
        auth = quote(self.proxy_username, safe="") + ":" + quote(reveal(self.proxy_password), safe="")
        return parts._replace(netloc=f"{auth}@{parts.netloc}").geturl()


class Tenant(models.Model):
    """A Netskope tenant (Cloud Exchange's "Settings > Netskope Tenants")."""

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField("tenant URL", help_text="e.g. https://example.goskope.com")
    token = SealedField(help_text="API v2 token")
    v1_token = SealedField(help_text="API v1 token (file hash lists)")
    alert_types = models.JSONField(default=list, blank=True, help_text="Alert types to pull, e.g. malware, malsite")
    alert_query = models.CharField(max_length=1000, blank=True)
    initial_range = models.PositiveIntegerField("initial range (days)", default=14)
    use_proxy = models.BooleanField("use system proxy", default=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        parts = urlsplit(self.url or "")
        if parts.scheme != "https" or not parts.hostname:
            raise ValidationError({"url": "The tenant URL is https://<tenant>.goskope.com."})
        if parts.path not in ("", "/") or parts.query:
            raise ValidationError({"url": "Give the tenant's base URL only, without a path."})
        self.url = f"https://{parts.netloc.lower()}"


class PluginConfigQuerySet(models.QuerySet):
    def enabled(self):
        """Configurations that run on their schedule."""
        return self.filter(enabled=True)


class PluginConfig(WithSecrets, models.Model):
    """One configured instance of a connector: a source to pull, a destination to push, or both."""

    class Status(models.TextChoices):
        NEVER = "", "never run"
        OK = "ok", "ok"
        ERROR = "error", "error"

    name = models.CharField(max_length=100, unique=True)
    connector = models.CharField(max_length=50, help_text="The connector's key in the registry.")
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="plugins")
    enabled = models.BooleanField(default=True)
    settings = models.JSONField(default=dict, blank=True, editable=False)
    secrets = SealedField(editable=False, help_text="The connector's secret settings, JSON, encrypted.")

    aging_days = models.PositiveIntegerField(
        "aging criteria (days)", default=90,
        help_text="A sighting expires this many days after it was last seen; 0 = never.",
    )
    sync_interval = models.PositiveIntegerField(
        "sync interval (minutes)", default=60, validators=[MinValueValidator(1)]
    )
    initial_range = models.PositiveIntegerField(
        "initial range (days)", default=14, help_text="How far back the first pull goes."
    )
    reputation = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    override_reputation = models.BooleanField(
        default=False,
        help_text="Replace the metadata of indicators owned by a source of lower reputation.",
    )
    use_proxy = models.BooleanField("use system proxy", default=False)
    ssl_verify = models.BooleanField(
        "validate SSL certificates", null=True, blank=True,
        help_text="Empty: the general setting.",
    )

    last_run = models.DateTimeField(
        null=True, blank=True,
        help_text="Checkpoint: the next pull fetches what arrived since. Empty: the initial range.",
    )
    cursor = models.JSONField(null=True, blank=True, editable=False)
    storage = models.JSONField(default=dict, blank=True, editable=False)
    last_status = models.CharField(max_length=10, choices=Status.choices, default="", blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = PluginConfigQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "plugin configuration"

    def __str__(self) -> str:
        return self.name

    def clean(self):
        from connectors import registry

        if self.connector and self.connector not in registry.connectors():
            raise ValidationError({"connector": f"Unknown connector {self.connector!r}."})
        if self.connector and registry.get(self.connector).needs_tenant and not self.tenant_id:
            raise ValidationError({"tenant": "This connector works on a Netskope tenant: choose one."})

    def get_connector(self):
        from connectors import registry

        return registry.get(self.connector)
