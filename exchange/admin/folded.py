"""Forms that carry another form's fields: a connector's settings on a plugin configuration, an
action's parameters on a sharing configuration.

The inner form's fields are declared on the model form with a prefix (class attributes, so that
the admin's fieldsets see them); on save their values are folded into a JSON field of the
instance, and the inner form's secret fields into its encrypted ``secrets``, write-only: the
input starts empty, blank keeps the stored value, and a "clear" box removes it.
"""

import copy
import json

from django import forms
from django.core.serializers.json import DjangoJSONEncoder

from exchange.admin.widgets import clear_field, secret_field


class FoldedForm(forms.ModelForm):
    """Set ``inner`` (a Form class), ``secret_names``, ``prefix`` and ``target`` (the JSON field)."""

    inner: type[forms.Form] | None = None
    secret_names: tuple[str, ...] = ()
    prefix_: str = ""
    target: str = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.inner is None:
            return
        stored = getattr(self.instance, self.target) or {}
        secrets = self.instance.get_secrets() if self.instance.pk else {}
        for name in self.inner.base_fields:
            if name in self.secret_names:
                if secrets.get(name):
                    self.fields[self.prefix_ + name].help_text = "A value is stored. Leave blank to keep it."
                else:
                    self.fields[f"{self.prefix_}clear_{name}"].widget = forms.HiddenInput()
            elif name in stored:
                self.initial[self.prefix_ + name] = stored[name]

    def clean(self):
        data = super().clean()
        if self.inner is None or any(name.startswith(self.prefix_) for name in self.errors):
            return data
        values, secrets = self._fold(data)
        form = self.inner(data=values)
        if not form.is_valid():
            for name, errors in form.errors.items():
                self.add_error(None if name == "__all__" else self.prefix_ + name, errors)
            return data
        cleaned = {name: value for name, value in form.cleaned_data.items() if name not in self.secret_names}
        try:
            self.check_folded(cleaned)
        except forms.ValidationError as exc:
            self.add_error(None, exc)
            return data
        setattr(self.instance, self.target, json.loads(json.dumps(cleaned, cls=DjangoJSONEncoder)))
        self.instance.set_secrets(secrets)
        return data

    def _fold(self, data: dict) -> tuple[dict, dict]:
        """The inner form's values (stored secrets standing in for blank inputs), and the secrets."""
        secrets = self.instance.get_secrets() if self.instance.pk else {}
        values = {}
        for name in self.inner.base_fields:
            value = data.get(self.prefix_ + name)
            if name in self.secret_names:
                if data.get(f"{self.prefix_}clear_{name}"):
                    secrets.pop(name, None)
                elif value:
                    secrets[name] = value
                value = secrets.get(name, "")
            values[name] = value
        return values, secrets

    def check_folded(self, cleaned: dict) -> None:
        """Checks of the folded values that need more than the inner form; raise ValidationError."""

    def folded_changed(self) -> bool:
        return any(name.startswith(self.prefix_) for name in self.changed_data)


def folded_fields(inner: type[forms.Form], secret_names: tuple[str, ...], prefix: str) -> dict[str, forms.Field]:
    """The inner form's fields, prefixed; secrets write-only, each with its "clear" box."""
    fields = {}
    for name in ordered(inner):
        field = inner.base_fields[name]
        if name in secret_names:
            label = field.label or name.replace("_", " ").capitalize()
            fields[prefix + name] = secret_field(label, field.help_text)
            fields[f"{prefix}clear_{name}"] = clear_field(label)
        else:
            fields[prefix + name] = copy.deepcopy(field)
    return fields


def ordered(inner: type[forms.Form]) -> list[str]:
    """The inner form's field names in the order it shows them (its ``field_order`` first)."""
    names = list(inner.base_fields)
    first = [name for name in (inner.field_order or []) if name in inner.base_fields]
    return first + [name for name in names if name not in first]


def folded_form(base: type[FoldedForm], inner: type[forms.Form], secret_names: tuple[str, ...],
                **attrs) -> type[FoldedForm]:
    """A subclass of ``base`` carrying ``inner``'s fields as class attributes."""
    fields = folded_fields(inner, secret_names, base.prefix_)
    return type(f"{inner.__name__}{base.__name__}", (base,),
                {"inner": inner, "secret_names": tuple(secret_names), **attrs, **fields})
