"""Source-change sensors, retrain triggers and schedules for fed-assets' models and datasets."""

from fed_assets.asset_graph import MODEL_ROLE, MODEL_ROLE_TAG, MODELS
from sensors.source_change import source_change_sensor
from sensors.watch import Cursor, Reading, Rules, Unreadable, advance

__all__ = [
    "MODELS",
    "MODEL_ROLE",
    "MODEL_ROLE_TAG",
    "Cursor",
    "Reading",
    "Rules",
    "Unreadable",
    "advance",
    "source_change_sensor",
]
