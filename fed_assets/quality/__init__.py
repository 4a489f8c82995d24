"""Quality gates on datasets that feed models: great-expectations suites and a drift check, as
blocking Dagster asset checks."""

from fed_assets.quality.checks import QUALITY_CHECK, quality_check
from fed_assets.quality.drift import DRIFT_CHECK, DRIFT_THRESHOLD, drift_check
from fed_assets.quality.suite import DatasetSuite, Validation, validate

__all__ = [
    "DRIFT_CHECK",
    "DRIFT_THRESHOLD",
    "QUALITY_CHECK",
    "DatasetSuite",
    "Validation",
    "drift_check",
    "quality_check",
    "validate",
]
