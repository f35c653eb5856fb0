"""Shared by the commands that start runs: name lookup and a one-line summary."""

from django.core.management.base import CommandError

from exchange.models import PluginConfig, Run


def configs_named(names: list[str], everything: bool) -> list[PluginConfig]:
    if everything:
        return list(PluginConfig.objects.enabled())
    if not names:
        raise CommandError("name one or more plugin configurations, or use --all")
    found = {config.name: config for config in PluginConfig.objects.filter(name__in=names)}
    missing = [name for name in names if name not in found]
    if missing:
        known = ", ".join(PluginConfig.objects.values_list("name", flat=True)) or "none"
        raise CommandError(f"no plugin configuration named {', '.join(map(repr, missing))} (known: {known})")
    return [found[name] for name in names]


def summary(run: Run) -> str:
    text = (f"run #{run.pk} {run.status}: {run.received} received, {run.created} created, {run.updated} updated, "
            f"{run.unchanged} unchanged, {run.rejected} rejected")
    return f"{text}; error: {run.error}" if run.error else text
