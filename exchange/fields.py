"""A model field whose value is only ever stored encrypted and never rendered by accident."""

import json

from django import forms
from django.db import models

from exchange import crypto


class Sealed:
    """A secret as stored: the ciphertext, revealed only when code asks for it.

    ``str()`` never shows the secret, so a template, a log line or a change message that
    touches the field shows a mask instead.
    """

    __slots__ = ("token",)

    def __init__(self, token: str = ""):
        self.token = token or ""

    def reveal(self) -> str:
        return crypto.unseal(self.token) if self.token else ""

    def __bool__(self) -> bool:
        return bool(self.token)

    def __eq__(self, other) -> bool:
        return isinstance(other, Sealed) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)

    def __str__(self) -> str:
        return "********" if self.token else ""

    __repr__ = __str__


class SecretFormField(forms.CharField):
    """A password input that never renders the stored value back; blank means "keep it"."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}))
        super().__init__(**kwargs)

    def has_changed(self, initial, data) -> bool:
        return bool(data)


class SealedField(models.TextField):
    """Holds a :class:`Sealed`; assign a plain ``str`` to store a new secret, ``""`` to clear it.

    In a model form it is write-only: the input starts empty and leaving it empty keeps the
    stored value (clearing needs an explicit "clear" box, see the admin's ``SealedFieldsForm``).
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        return Sealed(value)

    def to_python(self, value):
        if isinstance(value, Sealed) or value is None:
            return value or Sealed()
        return value

    def get_prep_value(self, value):
        if isinstance(value, Sealed):
            return value.token
        if not value:
            return ""
        return crypto.seal(str(value))

    def value_to_string(self, obj):
        return self.get_prep_value(self.value_from_object(obj))

    def formfield(self, **kwargs):
        return SecretFormField(label=kwargs.get("label", self.verbose_name.capitalize()), help_text=self.help_text)

    def save_form_data(self, instance, data):
        if data:
            setattr(instance, self.name, data)


class WithSecrets:
    """For a model with a ``secrets`` SealedField holding a JSON object of named secrets."""

    def get_secrets(self) -> dict:
        text = reveal(self.secrets)
        return json.loads(text) if text else {}

    def set_secrets(self, values: dict) -> None:
        kept = {key: value for key, value in values.items() if value}
        self.secrets = json.dumps(kept) if kept else ""


def reveal(value) -> str:
    """The plaintext of a field value that is either :class:`Sealed` or a fresh ``str``."""
    return value.reveal() if isinstance(value, Sealed) else (value or "")
