"""What a sharing configuration must satisfy before it is saved, and what deserves a warning."""

from django.core.exceptions import ValidationError

from exchange.models.sharing import SharingConfig, validate_params


def check_sharing_config(config: SharingConfig) -> None:
    """Raise ValidationError, by field, for a configuration that cannot work as saved; clean
    its action parameters in place."""
    errors: dict[str, list[str]] = {}
    if config.source_id and config.source_id == config.destination_id:
        errors.setdefault("destination", []).append(
            "The source and the destination are the same plugin configuration: a share goes one way, "
            "from one to another (a bidirectional share is two configurations)."
        )
    if config.destination_id:
        _check_action(config, errors)
    if errors:
        raise ValidationError(errors)


def _check_action(config: SharingConfig, errors: dict) -> None:
    destination = config.destination
    try:
        connector = destination.get_connector()
    except LookupError:
        errors.setdefault("destination", []).append(f"{destination}: unknown connector {destination.connector!r}.")
        return
    if not connector.can_push:
        errors.setdefault("destination", []).append(
            f"{destination} cannot receive indicators: the {connector.label} connector has no push action."
        )
        return
    try:
        action = config.get_action()
    except LookupError:
        keys = ", ".join(a.key for a in connector.actions())
        errors.setdefault("action", []).append(f"{connector.label} has no action {config.action!r} (one of: {keys}).")
        return
    try:
        config.params = validate_params(action, config.params or {}, config.get_secrets())
        connector.check_sharing(config, action)
    except ValidationError as exc:
        errors.setdefault("action", []).extend(f"{action.label}: {message}" for message in exc.messages)
        return
    conflict = _conflict(config, action)
    if conflict:
        errors.setdefault("action", []).append(conflict)


def same_target(config: SharingConfig) -> list[SharingConfig]:
    """Other configurations that write the same destination, action and target."""
    others = SharingConfig.objects.filter(destination=config.destination_id, action=config.action)
    if config.pk:
        others = others.exclude(pk=config.pk)
    target = config.target()
    return [other for other in others.select_related("destination") if other.target() == target]


def _describe_target(config: SharingConfig, action) -> str:
    target = config.target()
    what = f"{action.label} ({action.target_param} {target!r})" if target else action.label
    return f"{what} on {config.destination}"


def _conflict(config: SharingConfig, action) -> str:
    if action.mode != "replace" and not action.exclusive:
        return ""
    clash = same_target(config)
    if not clash:
        return ""
    if action.mode == "replace":
        why = "in full-replace mode: each run would overwrite what the other sent"
    else:
        why = "and this target takes one writer only: they would undo each other's changes"
    return (f"Sharing configuration {clash[0].name!r} already writes {_describe_target(config, action)} {why}. "
            "Use one configuration whose rule selects both, or another target.")


def warnings_for(config: SharingConfig) -> list[str]:
    """Worth telling the person who saves ``config``, without refusing it."""
    try:
        action = config.get_action()
    except LookupError:
        return []
    if action.mode == "replace" or action.exclusive:
        return []
    return [
        f"Sharing configuration {other.name!r} also appends to {_describe_target(config, action)}: "
        "the target receives both selections, and each configuration retracts only what it shared."
        for other in same_target(config)
    ]
