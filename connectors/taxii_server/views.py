"""The TAXII 2.1 endpoints of the published collections (OASIS TAXII 2.1, sections 4 and 5).

Every answer is ``application/taxii+json;version=2.1``; a client that accepts neither it nor any
JSON gets 406. Errors are TAXII error messages (``title``, ``description``, ``http_status``).
Per collection: no credentials, 401 with a Basic challenge; credentials that do not open it, 404
(TAXII 2.1 3.6: a resource the client may not access is "not found"). A collection is read-only:
a POST of objects is refused with 403.
"""

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from connectors.taxii_server import collection_id, collections
from connectors.taxii_server.objects import (
    MEDIA_STIX,
    BadRequest,
    Filters,
    manifest,
    objects,
    page,
    taxii_time,
)
from exchange import published

MEDIA_TAXII = "application/taxii+json;version=2.1"
MAX_CONTENT_LENGTH = 10 * 1024 * 1024
REALM = "CTE TAXII"
_ACCEPTED = ("application/taxii+json", "application/json", "application/*", "*/*")


def taxii(status: int, data: dict, headers: dict | None = None) -> JsonResponse:
    response = JsonResponse(data, status=status, content_type=MEDIA_TAXII, json_dumps_params={"ensure_ascii": False})
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def error(status: int, title: str, description: str = "") -> JsonResponse:
    return taxii(status, {"title": title, "description": description, "http_status": str(status)})


def _acceptable(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    if not accept:
        return True
    for item in accept.split(","):
        media, *options = (part.strip().lower() for part in item.split(";"))
        version = next((option.split("=", 1)[1] for option in options if option.startswith("version=")), None)
        if media in _ACCEPTED and version in (None, "2.1"):
            return True
    return False


def endpoint(view: Callable) -> Callable:
    """Content negotiation for a TAXII view."""
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not _acceptable(request):
            return error(406, "Not Acceptable", f"this server answers {MEDIA_TAXII}")
        try:
            return view(request, *args, **kwargs)
        except BadRequest as exc:
            return error(400, "Bad Request", str(exc))
    return wrapped


def readable(request: HttpRequest) -> list:
    """The collections the request's credentials open."""
    return [config for config in collections().order_by("name")
            if published.allowed(request, config.get_secrets(), config.params.get("username", ""))]


def _challenge() -> JsonResponse:
    response = error(401, "Unauthorized", "give a collection's token (Authorization: Bearer) or its username and "
                                          "password (HTTP Basic)")
    response["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    return response


def collection_view(view: Callable) -> Callable:
    """Finds the collection of the URL among those the request may read, then calls ``view``."""
    @endpoint
    @wraps(view)
    def wrapped(request, collection: str, *args, **kwargs):
        if not any(published.presented(request)):
            return _challenge()
        config = next((c for c in readable(request) if collection_id(c.params.get("slug", "")) == collection), None)
        if config is None:
            return error(404, "Not Found", f"no collection {collection} that these credentials may read")
        return view(request, config, *args, **kwargs)
    return wrapped


def describe(config) -> dict:
    params = config.params
    return {"id": collection_id(params.get("slug", "")), "title": params.get("title", config.name),
            "description": params.get("description", ""), "can_read": True, "can_write": False,
            "media_types": [MEDIA_STIX]}


@require_safe
@endpoint
def discovery(request):
    root = request.build_absolute_uri(reverse("taxii-root"))
    return taxii(200, {"title": "CTE", "description": "Indicators shared by this CTE (Cloud Threat Exchange).",
                       "default": root, "api_roots": [root]})


@require_safe
@endpoint
def api_root(request):
    return taxii(200, {"title": "CTE", "description": "Collections published by sharing configurations.",
                       "versions": [MEDIA_TAXII], "max_content_length": MAX_CONTENT_LENGTH})


@require_safe
@endpoint
def collection_list(request):
    if not any(published.presented(request)):
        return _challenge()
    found = readable(request)
    if not found:
        return _challenge()
    return taxii(200, {"collections": [describe(config) for config in found]})


@require_safe
@collection_view
def collection(request, config):
    return taxii(200, describe(config))


@csrf_exempt  # a TAXII client's POST gets the TAXII refusal, not the admin's CSRF page
@collection_view
def object_list(request, config):
    if request.method == "POST":
        return error(403, "Forbidden", "this collection is read-only: it publishes what CTE shares")
    if request.method not in ("GET", "HEAD"):
        return error(405, "Method Not Allowed")
    return _envelope(page(config, Filters.parse(request.GET)))


@require_safe
@collection_view
def object_detail(request, config, object_id: str):
    found = page(config, Filters.parse(request.GET), object_id)
    if not found.rows:
        return error(404, "Not Found", f"no object {object_id} in this collection")
    return _envelope(found)


@require_safe
@collection_view
def object_versions(request, config, object_id: str):
    found = page(config, Filters.parse(request.GET), object_id)
    if not found.rows:
        return error(404, "Not Found", f"no object {object_id} in this collection")
    versions = [entry["version"] for entry in manifest(found.rows)]
    return taxii(200, {"more": found.more, "versions": versions}, _added(found))


@require_safe
@collection_view
def manifest_list(request, config):
    found = page(config, Filters.parse(request.GET))
    return _paged({"objects": manifest(found.rows)}, found)


def _envelope(found) -> JsonResponse:
    return _paged({"objects": objects(found.rows)}, found)


def _paged(body: dict, found) -> JsonResponse:
    if not found.rows:
        return taxii(200, {})  # an empty envelope is an empty object (TAXII 2.1, 3.7)
    body = {"more": found.more, **({"next": found.next} if found.next else {}), **body}
    return taxii(200, body, _added(found))


def _added(found) -> dict:
    if not found.rows:
        return {}
    return {"X-TAXII-Date-Added-First": taxii_time(found.first_added),
            "X-TAXII-Date-Added-Last": taxii_time(found.last_added)}
