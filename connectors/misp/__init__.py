"""MISP: a MISP instance's REST API (pull, and share as events) and MISP feeds (pull).

Two connectors, because a user meets two different systems: a MISP instance is reached with an
API key, can be searched and written to; a MISP feed is a folder of static files anyone may
publish (CIRCL, botvrij.eu, another team's MISP), read-only. They share the mapping of MISP
attributes to indicators (``mapping``).
"""

from connectors.misp import api, feed  # noqa: F401  (they register the connectors)
