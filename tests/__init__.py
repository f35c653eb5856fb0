# The scripted test connector registers itself on import, for every test module.
from tests.support import connectors  # noqa: F401
