"""The errors a placement can end in: a figure that cannot be right, or no pool that fits."""

from __future__ import annotations

from fed_assets.errors import ConfigurationError, FedAssetsError

# The constraints a pool can fail, in the order they are checked.
CONSTRAINTS = ("residency", "memory", "deadline", "budget")


class PoolConfigError(ConfigurationError):
    """A compute pool's figures are missing or contradict each other (memory ≤ 0, ...)."""


class PlacementRefused(FedAssetsError):
    """No pool of the estate meets the run's constraints.

    Attributes:
        constraint: the constraint no pool meets (one of ``CONSTRAINTS``, or ``"empty"`` for an
            estate with no pool at all, or ``"several"`` when pools fail different ones).
        rejected: pool name → why it was rejected.
    """

    def __init__(
        self, what: str, reason: str, fix: str, *, constraint: str, rejected: dict[str, str]
    ):
        super().__init__(what, reason, fix)
        self.constraint = constraint
        self.rejected = rejected
