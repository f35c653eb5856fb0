"""Netskope: indicators from a tenant's malware and malsite alerts, and pushes to its URL lists
and file hash lists.

A plugin configuration works on one tenant (``exchange.Tenant``: URL, API v2 and v1 tokens,
alerts filter, proxy choice). Pull: see :mod:`connectors.netskope.alerts`. Push: see
:mod:`connectors.netskope.lists`. Each list is written by one sharing configuration only
(two writers would overwrite each other), whatever plugin configuration on the tenant it goes
through.
"""

from collections.abc import Iterator
from dataclasses import replace

from django import forms

from connectors.base import Action, Batch, Connector, ConnectorError, Context, Outbound, PushResult
from connectors.netskope.alerts import TYPES, AlertPull, index_name, start_of
from connectors.netskope.client import TenantClient, load_tenant, route, tenant_session
from connectors.netskope.lists import HASH_LIST_MAX_BYTES, MB, URL_LIST_MAX_MB, lists_of, replace_hashes
from connectors.netskope.tenant import check_tenant, one_writer_per_list
from connectors.registry import register

__all__ = ["Netskope", "TenantClient", "check_tenant", "tenant_session"]

URL_TYPES = ("url", "domain", "hostname", "ipv4")  # the tenant refuses IPv6 entries
HASH_TYPES = ("md5", "sha256")
TENANT_URL_ITEMS = 300_000


class NetskopeForm(forms.Form):
    alert_types = forms.MultipleChoiceField(
        label="Alert types to pull", choices=list(TYPES.items()), required=False, initial=list(TYPES),
        widget=forms.CheckboxSelectMultiple,
        help_text="Malware alerts give MD5 and SHA256 hashes, malsite alerts URLs and hosts. "
                  "None: this configuration only receives indicators.",
    )


class UrlListForm(forms.Form):
    list_name = forms.CharField(max_length=100, help_text="The tenant's URL list (Policies > Profiles > URL Lists).")
    must_exist = forms.BooleanField(
        required=False, label="The list must exist",
        help_text="Off: the list is created on the tenant when it has none by that name.",
    )
    list_type = forms.ChoiceField(choices=[("exact", "Exact"), ("regex", "Regex")], initial="exact", required=False,
                                  help_text="Exact: URLs and hosts as they are; regex: each entry is a pattern.")
    max_size = forms.IntegerField(
        label="Max list size (MB)", required=False, min_value=1, max_value=URL_LIST_MAX_MB, initial=URL_LIST_MAX_MB,
        help_text="What does not fit stays pending, higher reputation and more recent indicators first.",
    )

    def clean_list_name(self) -> str:
        return self.cleaned_data["list_name"].strip()

    def clean_list_type(self) -> str:
        return self.cleaned_data["list_type"] or "exact"

    def clean_max_size(self) -> int:
        return self.cleaned_data["max_size"] or URL_LIST_MAX_MB


class HashListForm(forms.Form):
    list_name = forms.CharField(max_length=100, help_text="The tenant's file hash list (Policies > Profiles > File).")

    def clean_list_name(self) -> str:
        return self.cleaned_data["list_name"].strip()


URL_LIST = Action(
    key="url_list", label="Add to URL list", form=UrlListForm, mode="append", types=URL_TYPES,
    max_items=TENANT_URL_ITEMS, max_bytes=URL_LIST_MAX_MB * MB, batch_items=10_000, batch_bytes=MB,
    target_param="list_name", exclusive=True, retracts=True,
)
FILE_HASH_LIST = Action(
    key="file_hash_list", label="Add to file hash list", form=HashListForm, mode="replace", types=HASH_TYPES,
    max_bytes=HASH_LIST_MAX_BYTES, target_param="list_name",
)


def max_list_bytes(params: dict) -> int:
    """The sharing configuration's max URL list size in bytes (params may be unvalidated)."""
    try:
        megabytes = int(params.get("max_size") or URL_LIST_MAX_MB)
    except (TypeError, ValueError):
        megabytes = URL_LIST_MAX_MB
    return min(max(megabytes, 1), URL_LIST_MAX_MB) * MB


@register
class Netskope(Connector):
    key = "netskope"
    label = "Netskope"
    description = ("Pulls MD5/SHA256 hashes and URLs from a Netskope tenant's malware and malsite alerts; "
                   "pushes URLs to its URL lists and hashes to its file hash lists.")
    settings_form = NetskopeForm
    needs_tenant = True

    def client(self, ctx: Context) -> TenantClient:
        tenant, proxy = load_tenant(ctx.config)
        return TenantClient(tenant, route(ctx.session, proxy))

    def validate(self, ctx: Context) -> str:
        client = self.client(ctx)
        return check_tenant(client, alert_types=self.types(ctx, client.tenant))

    def types(self, ctx: Context, tenant) -> list[str]:
        """The alert types to pull: the configuration's, within the tenant's alerts filter."""
        chosen = [kind for kind in TYPES if kind in (ctx.settings.get("alert_types") or [])]
        allowed = [kind for kind in tenant.alert_types or TYPES]
        return [kind for kind in chosen if kind in allowed]

    def pull(self, ctx: Context) -> Iterator[Batch]:
        client = self.client(ctx)
        types = self.types(ctx, client.tenant)
        if not types:
            chosen = ctx.settings.get("alert_types") or []
            if chosen:
                allowed = ", ".join(client.tenant.alert_types)
                raise ConnectorError(f"tenant {client.name}'s alerts filter allows {allowed}; this configuration "
                                     f"pulls {', '.join(chosen)}: nothing to pull", permanent=True)
            return
        pull = AlertPull(client, index_name(ctx.config, ctx.storage), types, client.tenant.alert_query)
        yield from pull.run(start_of(ctx.since, client.tenant.initial_range), ctx.cursor)

    def actions(self) -> list[Action]:
        return [URL_LIST, FILE_HASH_LIST]

    def tune(self, action: Action, settings: dict, params: dict) -> Action:
        if action.key == URL_LIST.key:
            return replace(action, max_bytes=max_list_bytes(params or {}))
        return action

    def push(self, ctx: Context, action: Action, params: dict, indicators: list[Outbound]) -> PushResult:
        client = self._client_for_push(ctx)
        if action.key == FILE_HASH_LIST.key:
            return replace_hashes(client, params["list_name"], indicators)
        return lists_of(ctx, client).append(params, action.max_bytes or max_list_bytes(params),
                                            [item.value for item in indicators])

    def retract(self, ctx: Context, action: Action, params: dict, indicators: list[Outbound]) -> PushResult:
        return lists_of(ctx, self._client_for_push(ctx)).remove(params, [item.value for item in indicators])

    def finish(self, ctx: Context, action: Action, params: dict) -> None:
        if action.key == URL_LIST.key:
            lists_of(ctx, self._client_for_push(ctx)).deploy()

    def _client_for_push(self, ctx: Context) -> TenantClient:
        client = getattr(ctx, "netskope_client", None)
        if client is None:
            client = ctx.netskope_client = self.client(ctx)
        return client

    def check_sharing(self, config, action: Action) -> None:
        one_writer_per_list(config, action)
