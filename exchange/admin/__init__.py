"""The admin is the whole configuration UI: one module per area."""

from exchange.admin import general, indicators, plugins, runs, sharing  # noqa: F401
