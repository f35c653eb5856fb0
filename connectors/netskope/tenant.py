"""A tenant's "Test connection", and the rule that one list has one writer."""

import time

from django import forms

from connectors.base import Action, ConnectorError
from connectors.netskope.alerts import TYPES
from connectors.netskope.client import ALERTS, TOKEN_PAGE, URLLIST, MissingScope, TenantClient
from exchange.fields import reveal

# A consumer of its own: probing the iterator moves only this index, never a pull's.
PROBE_INDEX = "cte_connection_test"
LIST_KINDS = {"url_list": "URL list", "file_hash_list": "file hash list"}


def check_tenant(client: TenantClient, alert_types: list[str] | None = None) -> str:
    """Check the API v2 token on every endpoint the tenant is used for; return what was
    checked, or raise ConnectorError saying exactly what is wrong."""
    types = alert_types if alert_types is not None else [kind for kind in client.tenant.alert_types or TYPES]
    checks = [(ALERTS + kind, f"reading {kind} alerts", {"index": PROBE_INDEX, "operation": str(int(time.time()))})
              for kind in types]
    checks.append((URLLIST, "listing URL lists (URL list sharing)", {"pending": 1}))
    allowed, missing = [], []
    for path, what, params in checks:
        try:
            response = client.v2("GET", path, scope=path, what=what, params=params)
        except MissingScope as exc:
            missing.append(f"{exc.scope} (for {what})")
            continue
        body = client.json(response, what)
        if response.status_code != 200:
            raise ConnectorError(f"tenant {client.name} answered {what} with {response.status_code}: {body}")
        allowed.append(what)
    if missing:
        granted = f" (it may: {', '.join(allowed)})" if allowed else ""
        raise ConnectorError(f"tenant {client.name}: the API v2 token is valid but lacks the scope "
                             f"{'; '.join(missing)}{granted}: add it under {TOKEN_PAGE}", permanent=True)
    v1 = ("API v1 token set (used by file hash list pushes, checked at the first one)" if reveal(client.tenant.v1_token)
          else "no API v1 token (file hash lists need one)")
    return f"the API v2 token of {client.base} may use {', '.join(allowed)}; {v1}"


def one_writer_per_list(config, action: Action) -> None:
    """Refuse a sharing configuration writing a list of a tenant that another one writes,
    through whatever plugin configuration on that tenant."""
    from exchange.models import SharingConfig

    name = str(config.params.get(action.target_param) or "").strip() if action.target_param else ""
    destination = config.destination
    if not name or not destination.tenant_id:
        return
    others = SharingConfig.objects.filter(
        action=action.key, destination__connector=destination.connector, destination__tenant_id=destination.tenant_id,
    ).select_related("destination", "destination__tenant")
    if config.pk:
        others = others.exclude(pk=config.pk)
    for other in others:
        if str(other.params.get(action.target_param) or "").strip().casefold() != name.casefold():
            continue
        kind = LIST_KINDS.get(action.key, "list")
        through = f" (through {other.destination.name})" if other.destination_id != destination.pk else ""
        raise forms.ValidationError(
            f"Sharing configuration {other.name!r} already writes the {kind} {name!r} of tenant "
            f"{other.destination.tenant}{through}. Two configurations writing one list overwrite each other's "
            "entries: each source should feed its own list. Choose another list, or use one configuration whose "
            "rule selects both."
        )
