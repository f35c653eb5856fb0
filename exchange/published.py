"""Lists this app publishes itself (external dynamic lists, TAXII collections): who may read them.

A published list is a sharing configuration whose destination is served by this app; its
readers (firewalls, web gateways, TAXII clients) prove who they are with the list's own token or
its username and password, kept encrypted among the sharing configuration's secrets.
"""

import base64
import binascii
import hmac

from django.http import HttpRequest, HttpResponse

MIN_TOKEN_LENGTH = 16


def presented(request: HttpRequest) -> tuple[str, str, str]:
    """``(token, username, password)`` as the request presents them (empty when absent): a
    bearer token in ``Authorization`` or, for readers that cannot set headers, ``?token=``; a
    username and password with HTTP Basic."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip(), "", ""
    if scheme.lower() == "basic":
        try:
            username, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "", "", ""
        return "", username, password
    return request.GET.get("token", ""), "", ""


def allowed(request: HttpRequest, secrets: dict, username: str) -> bool:
    """True when the request carries the list's token, or its username and password."""
    token, user, password = presented(request)
    if token and secrets.get("token"):
        return _same(token, secrets["token"])
    if password and secrets.get("password") and username:
        # Both compared, always: the time taken must not tell which one was wrong.
        return _same(user, username) & _same(password, secrets["password"])
    return False


def challenge(realm: str) -> HttpResponse:
    """401 asking for credentials the way firewalls and TAXII clients understand."""
    response = HttpResponse("authentication required: the list's token or its username and password\n",
                            status=401, content_type="text/plain; charset=utf-8")
    response["WWW-Authenticate"] = f'Basic realm="{realm}", charset="UTF-8"'
    return response


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
