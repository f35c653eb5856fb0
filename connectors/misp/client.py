"""Talking to a MISP instance's REST API: headers, JSON, and what each refusal means to a person.

MISP authenticates with the raw API key in ``Authorization`` (no scheme) and answers JSON only
when asked with ``Accept: application/json``; otherwise it treats the call as a browser's and
redirects to its login page. Its errors are ``{"name", "message", "url"}`` objects, plus
``"errors"`` when a save fails validation (RestResponseComponent::saveFailResponse, HTTP 403):
a 403 is therefore either a bad key ("Authentication failed. ..."), a missing permission, or
refused data, and the body tells which. Redirects are not followed: a POST turned into a GET by
a redirect would search nothing, and the key must go only to the configured host.
"""

from typing import Any
from urllib.parse import quote

import requests

from connectors.base import ConnectorError, Context
from connectors.http import describe

EXCERPT = 200


def excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "…"


def body_of(response: requests.Response) -> Any:
    """The answer's JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def message_of(response: requests.Response) -> str:
    """MISP's own words for a refusal: its ``message`` (or ``name``), else the start of the body."""
    body = body_of(response)
    if isinstance(body, dict):
        text = body.get("message") or body.get("name")
        if text:
            return str(text)
    return excerpt(response.text) or response.reason or f"HTTP {response.status_code}"


def refused_key(response: requests.Response) -> bool:
    """MISP's answer to a wrong, disabled or missing key (AppController: "Authentication failed...")."""
    return response.status_code == 401 or (
        response.status_code == 403 and "authentication failed" in message_of(response).lower())


def validation_errors(errors: Any) -> str:
    """``{"value": ["Domain has an invalid format..."]}`` as one line: "value: Domain has ..."."""
    if isinstance(errors, dict):
        return "; ".join(f"{field}: {validation_errors(reasons)}" for field, reasons in errors.items())
    if isinstance(errors, list):
        return " ".join(validation_errors(reason) for reason in errors)
    return str(errors)


class MispClient:
    """Requests to one MISP instance with the configuration's URL, key and HTTP session."""

    def __init__(self, ctx: Context):
        self.base = str(ctx.settings.get("url") or "").rstrip("/")
        self.session = ctx.session
        self.headers = {"Authorization": ctx.secrets.get("api_key") or "", "Accept": "application/json",
                        "Content-Type": "application/json"}

    def url(self, path: str) -> str:
        return self.base + path

    def send(self, method: str, path: str, body: Any = None) -> requests.Response:
        """The raw answer (any status); a transport failure is a ConnectorError."""
        try:
            return self.session.request(method, self.url(path), json=body, headers=self.headers,
                                        allow_redirects=False)
        except requests.RequestException as exc:
            raise ConnectorError(f"{method} {self.url(path)}: {describe(exc)}") from None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON of a successful answer; anything else raises a ConnectorError that says why."""
        response = self.send(method, path, body)
        if response.status_code != 200:
            raise self.failure(method, path, response)
        data = body_of(response)
        if data is None:
            raise ConnectorError(f"{method} {self.url(path)} answered something that is not JSON "
                                 f"({excerpt(response.text) or 'an empty body'}): is {self.base} MISP's address?",
                                 permanent=True)
        return data

    def failure(self, method: str, path: str, response: requests.Response) -> ConnectorError:
        """What a non-200 answer means, as a ConnectorError (permanent when a person must act)."""
        status, where, said = response.status_code, f"{method} {self.url(path)}", message_of(response)
        if refused_key(response):
            return ConnectorError(f"MISP refused the API key ({where} answered {status}: {said}): check the API key "
                                  "and that its user is enabled and allowed to use the API", permanent=True)
        if status == 403:
            return ConnectorError(f"{where} answered 403: {said} (the API key's user lacks a permission for this)",
                                  permanent=True)
        if status == 405 and "not allowed" in said.lower():
            return ConnectorError(f"{where} answered 405: {said} (the role's search rate limit is 0)",
                                  permanent=True)
        if status == 429:
            return ConnectorError(f"MISP's search rate limit is used up ({where} answered 429: {said}; "
                                  f"{_rate_limit(response)}): the next run resumes where this one stopped")
        if response.is_redirect:
            return ConnectorError(f"{where} answered {status}, redirecting to {response.headers.get('Location')}: "
                                  "set the URL to MISP's base address (scheme and host as MISP serves them)",
                                  permanent=True)
        if status == 404:
            return ConnectorError(f"{where} answered 404 ({said}): check that the URL is MISP's base address",
                                  permanent=True)
        return ConnectorError(f"{where} answered {status} {response.reason}: {said}")

    # The calls the connector makes -------------------------------------------------------------

    def version(self) -> str:
        data = self.call("GET", "/servers/getVersion")
        if not isinstance(data, dict) or not data.get("version"):
            raise ConnectorError(f"GET {self.url('/servers/getVersion')} did not give a MISP version "
                                 f"({excerpt(str(data))}): is {self.base} MISP's address?", permanent=True)
        return str(data["version"])

    def search_attributes(self, query: dict) -> list[dict]:
        """One page of ``POST /attributes/restSearch`` (``{"response": {"Attribute": [...]}}``)."""
        data = self.call("POST", "/attributes/restSearch", query)
        response = data.get("response") if isinstance(data, dict) else None
        if isinstance(response, list) and not response:  # older MISP answers an empty search so
            return []
        attributes = response.get("Attribute") if isinstance(response, dict) else None
        if not isinstance(attributes, list):
            raise ConnectorError(f"POST {self.url('/attributes/restSearch')} answered JSON without "
                                 f"response.Attribute ({excerpt(str(data))})")
        return attributes

    def tag_exists(self, name: str) -> bool:
        data = self.call("GET", f"/tags/search/{quote(name, safe='')}")
        entries = data if isinstance(data, list) else []
        return any(isinstance(entry, dict) and (entry.get("Tag") or {}).get("name") == name for entry in entries)

    def add_tag(self, name: str, colour: str) -> None:
        """Create tag ``name``; one created meanwhile by someone else is as good."""
        response = self.send("POST", "/tags/add", {"name": name, "colour": colour, "exportable": True})
        if response.status_code == 200:
            return
        body = body_of(response)
        if response.status_code == 403 and isinstance(body, dict) and body.get("errors"):
            if "already exists" in validation_errors(body["errors"]):
                return
            raise ConnectorError(f"MISP refused to create the tag {name!r}: {validation_errors(body['errors'])}",
                                 permanent=True)
        if response.status_code == 403 and not refused_key(response):
            raise ConnectorError(
                f"the tag {name!r} does not exist in MISP and its user may not create tags ({message_of(response)}): "
                "create the tag in MISP, or give the user's role the tag editor permission; without the tag, "
                "what CTE shares would come back from MISP as new sightings", permanent=True)
        raise self.failure("POST", "/tags/add", response)


def _rate_limit(response: requests.Response) -> str:
    limit, reset = response.headers.get("X-Rate-Limit-Limit"), response.headers.get("X-Rate-Limit-Reset")
    if limit and reset:
        return f"{limit} searches per window, the window resets in {reset} s"
    return "no rate-limit headers"
