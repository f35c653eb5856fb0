"""Webhook: POST shared indicators as JSON batches to a URL of your own.

Each request is one batch::

    POST <url>
    Content-Type: application/json
    X-CTE-Timestamp: 1714557600                  (only with a secret)
    X-CTE-Signature: sha256=<64 hex digits>      (only with a secret; the header name is a setting)

    {"event": "indicators.shared",               ("indicators.retracted" to take values back)
     "source": "cte",
     "sharing": "<sharing configuration>",
     "label": "<the action's event tag, or empty>",
     "sent_at": "2024-05-01T10:00:00+00:00",
     "indicators": [{"type": "url", "value": "http://bad.example/x", "reputation": 8,
                     "severity": "high", "tags": ["phishing"], "comments": "",
                     "first_seen": "<ISO 8601 or null>", "last_seen": "...", "expires_at": "..."}]}

"Test connection" sends ``{"event": "ping", "source": "cte", "sent_at": ...}``, signed the same way.

Signature: with a secret set, the signature is ``sha256=`` and the hex HMAC-SHA256, keyed with
the secret (UTF-8), of the timestamp header's value, a dot, then the body's exact bytes::

    expected = "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + raw_body,
                                    hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(expected, request.headers["X-CTE-Signature"])

Verify over the raw body before parsing it, and compare in constant time. The timestamp is
signed so that a captured request cannot be replayed later: refuse one older than your
window. Retries resend the identical request (same timestamp), after up to a few minutes each
as ``Retry-After`` asks; answer a stale timestamp with 400, not 401, so CTE re-sends the batch
freshly signed at the next run instead of disabling the configuration.

Answers: any 2xx accepts the batch; its JSON body may refuse some values with
``{"rejected": {"<value>": "<reason>"}}`` or ``{"rejected": [{"value": ..., "reason": ...}]}``.
400, 413 and 422 fail the whole batch (the next run sends it again); 401, 403, 404, 405 and 410
disable the configuration until someone fixes it; 429 and 5xx are retried, honouring
``Retry-After``, then fail the run, as any other answer does. Redirects are not followed:
signed data goes only to the configured URL. When a later batch of one push fails, the
batches before it stay accepted and the rest fail, to be sent again at the next run.
"""

import hashlib
import hmac
import json
import re
import time
from dataclasses import replace
from datetime import UTC, datetime

import requests
from django import forms
from django.core.validators import URLValidator

from connectors.base import Action, Connector, ConnectorError, Context, Outbound, PushResult
from connectors.http import describe
from connectors.registry import register

DEFAULT_BATCH = 500
MAX_BATCH = 10_000
DEFAULT_SIGNATURE_HEADER = "X-CTE-Signature"
TIMESTAMP_HEADER = "X-CTE-Timestamp"
EXCERPT = 200

# RFC 9110 "token": the characters a header name may hold.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_RESERVED = {"content-type", "content-length", "host", "transfer-encoding", TIMESTAMP_HEADER.lower()}
# The batch itself is wrong: its values fail and the run records them, so the next run retries them.
_BATCH_REFUSED = (400, 413, 422)
# Nothing will change until a person does: these disable the configuration.
_PERMANENT = {
    401: "the receiver wants other credentials: check the secret and the signature header it expects",
    403: "the receiver refused this sender: check the secret, the signature header and its allow-list",
    404: "no webhook at that URL: check the URL",
    405: "that URL does not accept POST: check the URL",
    410: "the webhook at that URL was removed: check the URL",
}


def parse_headers(text: str) -> dict[str, str]:
    """Extra headers from "Name: value" lines; ValueError naming the first bad line."""
    headers = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not _TOKEN.fullmatch(name):
            raise ValueError(f'line {number}: write "Name: value" (a name of letters, digits and -)')
        if _CONTROL.search(value):
            raise ValueError(f"line {number}: the value holds control characters")
        headers[name] = value
    return headers


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (see the module docstring)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def batch_size(settings: dict) -> int:
    return min(max(int(settings.get("batch_size") or DEFAULT_BATCH), 1), MAX_BATCH)


def signature_header(settings: dict) -> str:
    return settings.get("signature_header") or DEFAULT_SIGNATURE_HEADER


class WebhookForm(forms.Form):
    url = forms.URLField(
        label="Webhook URL", max_length=2000, assume_scheme="https",
        validators=[URLValidator(schemes=["http", "https"])],
        error_messages={"invalid": "Give an http:// or https:// URL."},
    )
    secret = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Signs every request with HMAC-SHA256 so the receiver can tell it came from here.",
    )
    signature_header = forms.CharField(
        required=False, max_length=100, initial=DEFAULT_SIGNATURE_HEADER,
        help_text="The header that carries the signature.",
    )
    batch_size = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_BATCH, initial=DEFAULT_BATCH,
        help_text="Indicators per request.",
    )
    headers = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text='Extra headers, one "Name: value" per line. Stored unencrypted: '
                  "put no credentials here, the secret authenticates the requests.",
    )

    def clean_signature_header(self) -> str:
        name = self.cleaned_data["signature_header"].strip() or DEFAULT_SIGNATURE_HEADER
        if not _TOKEN.fullmatch(name):
            raise forms.ValidationError("A header name: letters, digits and -.")
        return name

    def clean_batch_size(self) -> int:
        return self.cleaned_data["batch_size"] or DEFAULT_BATCH

    def clean_headers(self) -> str:
        try:
            headers = parse_headers(self.cleaned_data["headers"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return "\n".join(f"{name}: {value}" for name, value in headers.items())

    def clean(self):
        data = super().clean()
        reserved = _RESERVED | {signature_header(data).lower()}
        for name in parse_headers(data.get("headers") or ""):
            if name.lower() in reserved:
                self.add_error("headers", f"{name} is set by the connector itself.")
        return data


class SendForm(forms.Form):
    event_tag = forms.CharField(
        required=False, max_length=200,
        help_text='Echoed in every body as "label", so one receiver can tell its senders apart.',
    )


def _excerpt(response: requests.Response) -> str:
    text = " ".join(response.text.split())
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "…"


def _succeeded(response: requests.Response) -> bool:
    return 200 <= response.status_code < 300  # not response.ok, which a redirect passes


def _retries(response: requests.Response) -> int:
    retry = getattr(response.raw, "retries", None)
    return len(getattr(retry, "history", ()) or ())


def _check(url: str, response: requests.Response) -> None:
    """Raise for an answer that says nothing about the values: the receiver is not there."""
    status = response.status_code
    if _succeeded(response) or status in _BATCH_REFUSED:
        return
    if response.is_redirect:
        raise ConnectorError(f"POST {url} answered {status}, redirecting to {response.headers['Location']}: "
                             "set the URL to the final address (webhooks are not redirected)")
    if status in _PERMANENT:
        raise ConnectorError(f"POST {url} answered {status}: {_PERMANENT[status]}", permanent=True)
    wait = f" (Retry-After: {response.headers['Retry-After']})" if "Retry-After" in response.headers else ""
    count = _retries(response)
    tries = f" after {count} {'retry' if count == 1 else 'retries'}" if count else ""
    body = f": {_excerpt(response)}" if response.text.strip() else ""
    raise ConnectorError(f"POST {url} answered {status} {response.reason}{wait}{tries}{body}")


def _batch_refusal(response: requests.Response, count: int) -> str:
    detail = _excerpt(response) or response.reason
    if response.status_code == 413:
        return (f"HTTP 413: the receiver finds a batch of {count} indicators too large; "
                f"set a smaller batch size ({detail})")
    return f"HTTP {response.status_code}: {detail}"


def _rejected(response: requests.Response, values: set[str]) -> dict[str, str]:
    """The values a 2xx answer refuses, with the receiver's reasons."""
    try:
        rejected = response.json().get("rejected")
    except (ValueError, AttributeError):  # no body, not JSON, or JSON that is not an object
        return {}
    if isinstance(rejected, dict):
        pairs = rejected.items()
    elif isinstance(rejected, list):
        pairs = [(item.get("value"), item.get("reason")) for item in rejected if isinstance(item, dict)]
    else:
        return {}
    return {value: str(reason or "refused by the receiver")[:EXCERPT]
            for value, reason in pairs if isinstance(value, str) and value in values}


def _outcome(response: requests.Response, values: list[str]) -> PushResult:
    if response.status_code in _BATCH_REFUSED:
        return PushResult(failed=dict.fromkeys(values, _batch_refusal(response, len(values))))
    refused = _rejected(response, set(values))
    return PushResult(accepted=[value for value in values if value not in refused], failed=refused)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@register
class Webhook(Connector):
    key = "webhook"
    label = "Webhook"
    description = "Sends shared indicators as signed JSON batches to a URL: your SOAR, SIEM or own service."
    settings_form = WebhookForm
    secret_fields = ("secret",)
    can_pull = False

    def validate(self, ctx: Context) -> str:
        url = ctx.settings["url"]
        response = self._post(ctx, {"event": "ping", "source": "cte", "sent_at": _now()})
        _check(url, response)
        if not _succeeded(response):
            raise ConnectorError(f"POST {url} refused a ping: {_batch_refusal(response, 0)}")
        secret = ctx.secrets.get("secret")
        signed = f"signed in {signature_header(ctx.settings)}" if secret else "not signed (no secret)"
        return f"POST {url} answered {response.status_code}; requests are {signed}"

    def actions(self) -> list[Action]:
        return [Action(key="send", label="Send indicators as JSON", form=SendForm, mode="append",
                       batch_items=DEFAULT_BATCH, retracts=True)]

    def tune(self, action: Action, settings: dict, params: dict) -> Action:
        return replace(action, batch_items=batch_size(settings))

    def push(self, ctx: Context, action: Action, params: dict, indicators: list[Outbound]) -> PushResult:
        return self._send(ctx, "indicators.shared", params, indicators)

    def retract(self, ctx: Context, action: Action, params: dict, indicators: list[Outbound]) -> PushResult:
        return self._send(ctx, "indicators.retracted", params, indicators)

    def _send(self, ctx: Context, event: str, params: dict, indicators: list[Outbound]) -> PushResult:
        """POST ``indicators`` in batches of the configured size."""
        result = PushResult()
        size = batch_size(ctx.settings)
        for start in range(0, len(indicators), size):
            try:
                part = self._deliver(ctx, event, params, indicators[start:start + size])
            except ConnectorError as exc:
                if exc.permanent or start == 0:
                    raise
                # Earlier batches arrived: report them as sent, and leave the rest to the next run.
                result.failed.update(dict.fromkeys((item.value for item in indicators[start:]), f"not sent: {exc}"))
                return result
            result.accepted += part.accepted
            result.failed.update(part.failed)
        return result

    def _deliver(self, ctx: Context, event: str, params: dict, batch: list[Outbound]) -> PushResult:
        payload = {"event": event, "source": "cte", "sharing": params.get("sharing") or "",
                   "label": params.get("event_tag") or "", "sent_at": _now(),
                   "indicators": [item.as_dict() for item in batch]}
        response = self._post(ctx, payload)
        _check(ctx.settings["url"], response)
        return _outcome(response, [item.value for item in batch])

    def _post(self, ctx: Context, payload: dict) -> requests.Response:
        url = ctx.settings["url"]
        body = json.dumps(payload, separators=(",", ":")).encode()
        try:
            return ctx.session.post(url, data=body, headers=self._headers(ctx, body), allow_redirects=False)
        except requests.RequestException as exc:
            raise ConnectorError(f"POST {url}: {describe(exc)}") from None

    def _headers(self, ctx: Context, body: bytes) -> dict[str, str]:
        try:
            headers = parse_headers(ctx.settings.get("headers") or "")
        except ValueError as exc:  # settings written around the form
            raise ConnectorError(f"the extra headers setting is invalid: {exc}", permanent=True) from None
        headers["Content-Type"] = "application/json"
        if secret := ctx.secrets.get("secret"):
            timestamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[signature_header(ctx.settings)] = sign(secret, timestamp, body)
        return headers
