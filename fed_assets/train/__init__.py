"""Fine-tuning small language models on silo data: per silo, centrally or federated.

``fed_assets.fine_tune`` and ``fed_assets.FineTunedModel`` (in ``fine_tune.py`` and ``model.py``)
pull in torch and transformers when first used; this package's own imports stay light.
"""

from __future__ import annotations

from fed_assets.train.config import TrainingConfig
from fed_assets.train.errors import (
    BaseModelError,
    ConfigFieldError,
    DivergedError,
    LabelError,
    MissingColumnError,
    ModelSaveError,
    NoRowsError,
    TrainingError,
)

__all__ = [
    "BaseModelError",
    "ConfigFieldError",
    "DivergedError",
    "LabelError",
    "MissingColumnError",
    "ModelSaveError",
    "NoRowsError",
    "TrainingConfig",
    "TrainingError",
]
