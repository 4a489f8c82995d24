"""Errors a user can cause when training: each a ``FedAssetsError`` naming what, why and the fix."""

from __future__ import annotations

from fed_assets.errors import (
    ConfigurationError,
    EmptyTableError,
    FedAssetsError,
    UnknownColumnError,
)


class TrainingError(FedAssetsError):
    """Base of the errors raised while preparing data for, running or saving a fine-tune."""


class NoRowsError(TrainingError, EmptyTableError):
    """The training data has no rows (or none left after dropping what cannot be used)."""


class MissingColumnError(TrainingError, UnknownColumnError):
    """A label, text or feature column the task needs is not in the data."""


class LabelError(TrainingError):
    """The label column cannot train a classifier: one class only, or null/NaN labels."""


class ConfigFieldError(TrainingError, ConfigurationError):
    """A ``TrainingConfig`` field (or a ``fine_tune`` argument) is out of range."""

    def __init__(self, field: str, reason: str, fix: str):
        self.field = field
        super().__init__(f"TrainingConfig.{field}", reason, fix)


class BaseModelError(TrainingError, ConfigurationError):
    """The base model cannot be found or loaded (unknown id offline, broken local folder)."""


class DivergedError(TrainingError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    def __init__(self, what: str, reason: str, fix: str, *, step: int, checkpoint: str | None):
        super().__init__(what, reason, fix)
        self.step = step
        self.checkpoint = checkpoint


class ModelSaveError(TrainingError):
    """Writing model artefacts failed (disk full, crash); the previous version stays current."""
