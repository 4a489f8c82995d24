"""The one exception hierarchy every user-caused error in fed-assets belongs to."""

from __future__ import annotations


class FedAssetsError(Exception):
    """Base of every error a user can cause; the message names what, why and the fix.

    Args:
        what: the silo, table or column (or several) the error is about.
        reason: why it failed, in one sentence.
        fix: what the user can do about it.
    """

    def __init__(self, what: str, reason: str, fix: str):
        self.what = what
        self.reason = reason
        self.fix = fix
        super().__init__(f"{what}: {reason}. Fix: {fix}")


class ConfigurationError(FedAssetsError):
    """A setting is missing or invalid (silo configuration, demo data folder, YAML file)."""


class UnknownSiloError(FedAssetsError):
    """A silo name that no configured silo has."""


class UnknownTableError(FedAssetsError):
    """A table the silo does not have."""


class UnknownColumnError(FedAssetsError):
    """A column the table does not have."""


class SiloUnreachableError(FedAssetsError):
    """The silo's server or storage could not be reached."""


class SiloAuthError(FedAssetsError):
    """The silo refused the credentials."""


class ReadOnlyViolation(FedAssetsError):
    """A statement that is not a read-only query was sent towards a silo."""


class QuerySyntaxError(FedAssetsError):
    """SQL that does not parse."""


class CorruptDataError(FedAssetsError):
    """A file or table in a silo could not be decoded (corrupt Parquet, broken Delta log)."""


class EmptyTableError(FedAssetsError):
    """A table that has no rows where rows are required, or no files at all."""


class SchemaDriftError(FedAssetsError):
    """A column an asset reads changed type since the catalog snapshot it was checked against."""


class SiloQueryError(FedAssetsError):
    """The silo rejected or failed a query for a reason not covered above."""


class UnsupportedFunctionError(SiloQueryError):
    """The silo has no function of this name: a federated query evaluates it above the silo."""

    def __init__(self, what: str, reason: str, fix: str, *, silo: str, function: str):
        super().__init__(what, reason, fix)
        self.silo = silo
        self.function = function


class PolicyViolation(FedAssetsError):
    """A movement of data that a residency or export policy keeps in place."""


class SiloTimeoutError(SiloQueryError):
    """A silo did not answer within a time bound; the statement was cancelled in the silo."""


class UnsafeFunctionError(SiloQueryError):
    """SQL bound for a silo calls a function that is not on the silo's allow-list."""
