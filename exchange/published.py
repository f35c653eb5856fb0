"""Lists this app publishes itself (external dynamic lists, TAXII collections): who may read them.

A published list is a sharing configuration whose destination is served by this app; its
readers (firewalls, web gateways, TAXII clients) prove who they are with the list's own token or
its username and password, kept encrypted among the sharing configuration's secrets.
"""

import base64
import binascii
import hmac

from django import forms
from django.http import HttpRequest, HttpResponse

MIN_TOKEN_LENGTH = 16
#: The fields of CredentialsForm kept encrypted among the sharing configuration's secrets.
SECRET_FIELDS = ("password", "token")


class CredentialsForm(forms.Form):
    """The readers' credentials of a published list: subclass it with the list's own fields."""

    username = forms.CharField(required=False, max_length=100, help_text="For HTTP Basic authentication.")
    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                               help_text="For HTTP Basic authentication, with the username.")
    token = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text=f"At least {MIN_TOKEN_LENGTH} characters, sent as 'Authorization: Bearer <token>' or "
                  "?token=<token>. e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
    )

    def clean_token(self):
        token = self.cleaned_data["token"]
        if token and len(token) < MIN_TOKEN_LENGTH:
            raise forms.ValidationError(f"A token needs at least {MIN_TOKEN_LENGTH} characters.")
        return token

    def clean(self):
        data = super().clean()
        if bool(data.get("username")) != bool(data.get("password")):
            raise forms.ValidationError("HTTP Basic authentication needs both a username and a password.")
        return data


def check_protected(config, name_param: str, same_name) -> None:
    """A published list must have credentials, and a name no other list of its kind has
    (``same_name``: the sharing configurations publishing under a name)."""
    secrets = config.get_secrets()
    if not secrets.get("token") and not secrets.get("password"):
        raise forms.ValidationError("Protect the list with a token, or a username and password: readers fetch "
                                    "it over the network.")
    name = config.params[name_param]
    taken = same_name(name).exclude(pk=config.pk).first()
    if taken is not None:
        raise forms.ValidationError(f"The name {name!r} is taken by sharing configuration {taken.name!r}.")


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
