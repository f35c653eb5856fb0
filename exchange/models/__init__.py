from exchange.models.config import PluginConfig, Settings, Tenant
from exchange.models.runs import RejectedRecord, Run
from exchange.models.sharing import Delivery, SharingConfig
from exchange.models.store import Indicator, IndicatorType, Severity, Sighting

__all__ = [
    "Delivery",
    "SharingConfig",
    "Indicator",
    "IndicatorType",
    "PluginConfig",
    "RejectedRecord",
    "Run",
    "Settings",
    "Severity",
    "Sighting",
    "Tenant",
]
