"""Small pieces the admin modules share: write-only secret fields and status badges."""

from django import forms
from django.utils.html import format_html

_COLOURS = {
    "ok": "#2e7d32", "success": "#2e7d32", "error": "#c62828", "failed": "#c62828",
    "running": "#1565c0", "disabled": "#757575", "never run": "#546e7a",
}


def badge(text: str) -> str:
    colour = _COLOURS.get(text, "#546e7a")
    return format_html(
        '<span style="background:{};color:#fff;padding:1px 7px;border-radius:9px;font-size:11px;'
        'white-space:nowrap">{}</span>', colour, text,
    )


def shorten(text: str, length: int = 80) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= length else text[: length - 1] + "…"


def secret_field(label: str, help_text: str = "") -> forms.CharField:
    """A password input that never renders the stored value back; blank keeps it."""
    return forms.CharField(
        label=label, required=False, strip=True, help_text=help_text,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )


def clear_field(label: str) -> forms.BooleanField:
    return forms.BooleanField(label=f"Clear the stored {label.lower()}", required=False)


class SealedFieldsForm(forms.ModelForm):
    """A ModelForm for a model with ``SealedField`` s named in ``sealed``: each gets a write-only
    input and a "clear" box, declared on the subclass as ``<name>`` and ``clear_<name>``."""

    sealed: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.sealed:
            if getattr(self.instance, name, None):
                self.fields[name].help_text = "A value is stored. Leave blank to keep it."
            else:
                self.fields[f"clear_{name}"].widget = forms.HiddenInput()

    def _post_clean(self):
        super()._post_clean()
        for name in self.sealed:
            value = self.cleaned_data.get(name)
            if value:
                setattr(self.instance, name, value)
            elif self.cleaned_data.get(f"clear_{name}"):
                setattr(self.instance, name, "")


def sealed_form(model, names: dict[str, str], base=SealedFieldsForm) -> type[SealedFieldsForm]:
    """A form class for ``model`` with write-only inputs for the sealed fields ``{name: label}``."""
    attrs = {"sealed": tuple(names), "Meta": type("Meta", (), {"model": model, "fields": "__all__"})}
    for name, label in names.items():
        attrs[name] = secret_field(label)
        attrs[f"clear_{name}"] = clear_field(label)
    return type(f"{model.__name__}Form", (base,), attrs)
