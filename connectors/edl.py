"""External dynamic list: this app serves a sharing configuration's indicators as plain text.

Firewalls and web gateways (PAN-OS external dynamic lists, FortiGate external threat feeds,
Check Point, ...) fetch a list of values over HTTP(S) on their own schedule::

    GET /feeds/edl/<list name>.txt           one value per line, "\\n" line ends, UTF-8
    Authorization: Basic <username:password>  (or "Bearer <token>", or ?token=<token>)

The list is what the sharing configuration's ledger shows as shared: a share run "pushes" by
marking indicators shared and "retracts" by marking them retracted, so the list changes at the
share run, not while a firewall reads it. Each list has its own credentials; an unknown list
answers 404 and a missing or wrong credential 401. ``ETag``/``If-None-Match`` let a reader skip
an unchanged list. A disabled sharing configuration stops changing its list but keeps serving
it: a firewall that cannot fetch its list keeps the last copy anyway, and an empty answer would
lift the blocks.

PAN-OS wants URL entries without ``http://`` or ``https://`` (docs.paloaltonetworks.com, "Formatting
Guidelines for an External Dynamic List"): the "without scheme" URL format writes them so. One type
per list is what PAN-OS expects: choose the types, or write a rule that selects one.
"""

from dataclasses import replace

from django import forms
from django.db.models import Count, Max, Q
from django.http import Http404, HttpResponse, HttpResponseNotModified, StreamingHttpResponse
from django.urls import reverse
from django.views.decorators.http import require_safe

from connectors.base import Action, Connector, Context, Outbound, PushResult
from connectors.registry import register
from exchange import published
from exchange.models import Delivery, IndicatorType, SharingConfig

KEY, ACTION = "edl", "publish"
URL_FORMATS = [("no_scheme", "Without scheme, as PAN-OS and FortiGate expect (evil.example/login)"),
               ("as_stored", "As stored (http://evil.example/login)")]


class EdlSettings(forms.Form):
    base_url = forms.URLField(
        label="Public address of CTE", required=False, assume_scheme="https",
        help_text="How firewalls reach this app, e.g. https://cte.example.com: the lists' full addresses are "
                  "shown with it. Empty: the address of the admin page.",
    )


class PublishForm(published.CredentialsForm):
    slug = forms.SlugField(
        label="List name", max_length=100,
        help_text="The list is served at /feeds/edl/<list name>.txt: letters, digits, - and _.",
    )
    types = forms.MultipleChoiceField(
        choices=IndicatorType.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Only these types (PAN-OS takes one type per list: IP, domain or URL). None: what the rule selects.",
    )
    url_format = forms.ChoiceField(choices=URL_FORMATS, initial="no_scheme", label="URL format")
    max_entries = forms.IntegerField(
        required=False, min_value=1, label="Maximum entries",
        help_text="The reader's capacity (e.g. 50,000 URLs on many PAN-OS models): what does not fit waits, "
                  "highest reputation and most recent first. Empty: no limit.",
    )


@register
class ExternalDynamicList(Connector):
    key = KEY
    label = "External dynamic list (served by CTE)"
    description = ("Publishes shared indicators as plain-text lists that firewalls and web gateways fetch from this "
                   "app (PAN-OS external dynamic lists, FortiGate external threat feeds), each behind its own "
                   "token or username and password.")
    settings_form = EdlSettings
    can_pull = False

    def validate(self, ctx: Context) -> str:
        lists = [str(config.params.get("slug")) for config in lists_of(ctx.config)]
        if not lists:
            return "served by this app; no list is published yet: add a sharing configuration"
        return f"served by this app: {', '.join(path_of(slug) for slug in lists)}"

    def actions(self) -> list[Action]:
        return [Action(ACTION, "Publish as an external dynamic list", form=PublishForm, mode="append",
                       retracts=True, target_param="slug", exclusive=True, batch_items=5000,
                       secret_fields=published.SECRET_FIELDS)]

    def tune(self, action: Action, settings: dict, params: dict) -> Action:
        types = tuple(params.get("types") or ())
        max_entries = params.get("max_entries")
        return replace(action, types=types, max_items=max_entries if isinstance(max_entries, int) else None)

    def check_sharing(self, config, action: Action) -> None:
        published.check_protected(config, "slug", lists_named)

    def published_at(self, config) -> str:
        return path_of(config.params["slug"]) if config.params.get("slug") else ""

    def push(self, ctx: Context, action: Action, params: dict, indicators: list[Outbound]) -> PushResult:
        # The list is served from the ledger: what the share run records as shared is on it.
        return PushResult(accepted=[item.value for item in indicators])

    def retract(self, ctx: Context, action: Action, params: dict, indicators: list[Outbound]) -> PushResult:
        return PushResult(accepted=[item.value for item in indicators])


def path_of(slug: str) -> str:
    return reverse("edl", args=[slug])


def lists_named(slug: str):
    return SharingConfig.objects.filter(destination__connector=KEY, action=ACTION, params__slug=slug)


def lists_of(destination):
    return SharingConfig.objects.filter(destination=destination, action=ACTION).order_by("name")


def entry(value: str, type_: str, url_format: str) -> str:
    """A value as a line of the list."""
    if type_ == "url" and url_format == "no_scheme":
        return value.split("://", 1)[-1]
    return value


@require_safe
def serve(request, slug: str):
    """The list ``slug`` as plain text, for the readers holding its credentials."""
    config = lists_named(slug).first()
    if config is None:
        raise Http404(f"no list named {slug!r}")
    if not published.allowed(request, config.get_secrets(), config.params.get("username", "")):
        return published.challenge(f"CTE list {slug}")
    shared = Delivery.objects.filter(config=config, status=Delivery.Status.SHARED)
    # Any change of the list changes a delivery's `updated`: the tag moves with the content.
    state = Delivery.objects.filter(config=config).aggregate(
        changed=Max("updated"), shared=Count("pk", filter=Q(status=Delivery.Status.SHARED)))
    etag = f'W/"{state["shared"]}-{state["changed"].timestamp() if state["changed"] else 0}"'
    if etag in request.headers.get("If-None-Match", ""):
        return HttpResponseNotModified(headers={"ETag": etag})
    url_format = config.params.get("url_format", "no_scheme")
    rows = shared.order_by("value").values_list("value", "type").iterator(chunk_size=5000)
    body = (f"{entry(value, type_, url_format)}\n".encode() for value, type_ in rows)
    response = StreamingHttpResponse(body, content_type="text/plain; charset=utf-8") if state["shared"] else \
        HttpResponse(b"", content_type="text/plain; charset=utf-8")
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"
    return response
