"""TAXII collection: this app publishes a sharing configuration's indicators as a read-only
TAXII 2.1 collection, for the TAXII clients of partners, SIEMs and threat-intelligence platforms.

Endpoints (TAXII 2.1, media type ``application/taxii+json;version=2.1``), see ``views``::

    GET /taxii2/                                            discovery
    GET /taxii2/cte/                                        the API root
    GET /taxii2/cte/collections/                            the collections these credentials may read
    GET /taxii2/cte/collections/<id>/                       one collection
    GET /taxii2/cte/collections/<id>/objects/               its indicators: added_after, limit, next, match[...]
    GET /taxii2/cte/collections/<id>/objects/<object id>/   one indicator
    GET /taxii2/cte/collections/<id>/objects/<object id>/versions/
    GET /taxii2/cte/collections/<id>/manifest/

A collection holds what the sharing configuration's ledger shows as shared (a STIX 2.1 indicator
per value) and, once retracted, a revoked version of it, so that readers drop it too. Object ids
are those the STIX/TAXII connector gives the same values, so a value published here and pushed to
another server is one object. Each collection has its own token or username and password; the
discovery and API root resources need none.
"""

import uuid

from django import forms
from django.urls import reverse

from connectors.base import Action, Connector, Context, Outbound, PushResult
from connectors.registry import register
from exchange import published
from exchange.models import SharingConfig

KEY, ACTION = "taxii_server", "publish"
#: Never change: the collections' ids derive from it.
COLLECTIONS = uuid.UUID("0b6f7c5e-2a51-5d8e-8f3b-7d4c9e1a6b20")


class CollectionForm(published.CredentialsForm):
    slug = forms.SlugField(label="Collection alias", max_length=100,
                           help_text="Names the collection in this app; its TAXII id derives from it.")
    title = forms.CharField(max_length=200, help_text="What TAXII clients see, e.g. 'ACME high-confidence URLs'.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


def collection_id(slug: str) -> str:
    return str(uuid.uuid5(COLLECTIONS, slug))


def collections():
    """Every published collection (sharing configurations whose destination is this connector)."""
    return SharingConfig.objects.filter(destination__connector=KEY, action=ACTION).select_related("destination")


def named(slug: str):
    return collections().filter(params__slug=slug)


@register
class TaxiiCollection(Connector):
    key = KEY
    label = "TAXII collection (served by CTE)"
    description = ("Publishes shared indicators as a read-only TAXII 2.1 collection of this app (STIX 2.1 "
                   "indicators; retracted ones revoked), each collection behind its own token or username and "
                   "password.")
    can_pull = False

    def validate(self, ctx: Context) -> str:
        served = [f"{config.params.get('title')} ({collection_id(config.params.get('slug', ''))})"
                  for config in collections().filter(destination=ctx.config).order_by("name")]
        root = reverse("taxii-root")
        if not served:
            return f"served by this app at {root}; no collection is published yet: add a sharing configuration"
        return f"served by this app at {root}: {', '.join(served)}"

    def actions(self) -> list[Action]:
        return [Action(ACTION, "Publish as a TAXII collection", form=CollectionForm, mode="append", retracts=True,
                       target_param="slug", exclusive=True, batch_items=5000,
                       types=("url", "domain", "hostname", "ipv4", "ipv6", "cidr", "md5", "sha1", "sha256", "email"),
                       secret_fields=published.SECRET_FIELDS)]

    def check_sharing(self, config, action: Action) -> None:
        published.check_protected(config, "slug", named)

    def published_at(self, config) -> str:
        slug = config.params.get("slug")
        return reverse("taxii-collection", args=[collection_id(slug)]) if slug else ""

    def push(self, ctx: Context, action: Action, params: dict, indicators: list[Outbound]) -> PushResult:
        # The collection is read from the ledger: what the share run records as shared is in it.
        return PushResult(accepted=[item.value for item in indicators])

    def retract(self, ctx: Context, action: Action, params: dict, indicators: list[Outbound]) -> PushResult:
        # A retracted value stays in the collection as a revoked object, read from the ledger too.
        return PushResult(accepted=[item.value for item in indicators])
