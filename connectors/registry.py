"""Connectors by key. A connector module registers its class with ``@register``; the modules
listed in ``settings.CTE_CONNECTORS`` are imported at start-up. Adding one needs no migration."""

from importlib import import_module

from django.conf import settings

from connectors.base import Connector

_connectors: dict[str, type[Connector]] = {}


def register(cls: type[Connector]) -> type[Connector]:
    if not getattr(cls, "key", None) or not getattr(cls, "label", None):
        raise TypeError(f"{cls.__name__} needs a key and a label")
    existing = _connectors.get(cls.key)
    if existing is not None and existing is not cls:
        raise ValueError(f"connector key {cls.key!r} is taken by {existing.__module__}.{existing.__name__}")
    _connectors[cls.key] = cls
    return cls


def autodiscover() -> None:
    for module in settings.CTE_CONNECTORS:
        import_module(module)


def connectors() -> dict[str, type[Connector]]:
    return dict(_connectors)


def get(key: str) -> Connector:
    try:
        return _connectors[key]()
    except KeyError:
        raise LookupError(f"no connector {key!r} (known: {', '.join(sorted(_connectors)) or 'none'})") from None


def choices() -> list[tuple[str, str]]:
    return sorted(((key, cls.label) for key, cls in _connectors.items()), key=lambda pair: pair[1].lower())
