"""Small factories for tests: a plugin configuration, a batch of records."""

from connectors.base import Record
from exchange.models import PluginConfig


def make_config(name: str = "feed", connector: str = "webfeed", **fields) -> PluginConfig:
    secrets = fields.pop("secrets", None)
    config = PluginConfig(name=name, connector=connector, **fields)
    if secrets:
        config.set_secrets(secrets)
    config.save()
    return config


def records(*values: str, type: str | None = None, **fields) -> list[Record]:
    return [Record(value, type, **fields) for value in values]
