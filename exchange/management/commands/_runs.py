"""Shared by the commands that start runs: name lookup and a one-line summary."""

from django.core.management.base import CommandError

from exchange.models import PluginConfig, Run


def named(model, names: list[str], everything: bool = False, what: str = "plugin configuration") -> list:
    """The rows of ``model`` with these names, in order (every enabled one with ``everything``);
    CommandError naming what is missing and what exists."""
    if everything:
        return list(model.objects.enabled())
    if not names:
        raise CommandError(f"name one or more {what}s, or use --all")
    found = {row.name: row for row in model.objects.filter(name__in=names)}
    missing = [name for name in names if name not in found]
    if missing:
        known = ", ".join(model.objects.values_list("name", flat=True)) or "none"
        raise CommandError(f"no {what} named {', '.join(map(repr, missing))} (known: {known})")
    return [found[name] for name in names]


def configs_named(names: list[str], everything: bool) -> list[PluginConfig]:
    return named(PluginConfig, names, everything)


def summary(run: Run) -> str:
    text = (f"run #{run.pk} {run.status}: {run.received} received, {run.created} created, {run.updated} updated, "
            f"{run.unchanged} unchanged, {run.rejected} rejected")
    if run.withdrawn:
        text += f", {run.withdrawn} withdrawn"
    return f"{text}; error: {run.error}" if run.error else text


def run_each(command, configs, start, describe, what: str) -> None:
    """Run ``start(pk)`` for each configuration, one line each (``describe(run)``); CommandError
    naming the ones whose run failed. A run that must not start now (Skipped) is a warning."""
    from exchange.pull import Skipped

    failed = []
    for config in configs:
        try:
            run = start(config.pk)
        except Skipped as exc:
            command.stdout.write(command.style.WARNING(f"{config.name}: skipped, {exc}"))
            continue
        style = command.style.SUCCESS if run.status == Run.Status.SUCCESS else command.style.ERROR
        command.stdout.write(style(f"{config.name}: {describe(run)}"))
        if run.status != Run.Status.SUCCESS:
            failed.append(config.name)
    if failed:
        raise CommandError(f"{what} failed for {', '.join(failed)}")
