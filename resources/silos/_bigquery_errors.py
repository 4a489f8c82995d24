"""How BigQuery driver errors are told apart: unreachable, over gRPC, refused credentials."""

from __future__ import annotations


def first_line(err: Exception) -> str:
    """The driver's first line, or for retries the last underlying error's."""
    cause = getattr(err, "cause", None)
    if cause is not None and hasattr(err, "cause"):
        err = cause
    text = getattr(err, "message", None) or str(err)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(err).__name__


def unreachable(err: Exception) -> bool:
    import requests
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc

    if isinstance(err, gexc.RetryError) and err.cause is not None:
        return unreachable(err.cause)
    return isinstance(
        err,
        (
            requests.ConnectionError,
            requests.Timeout,
            gexc.ServiceUnavailable,
            gexc.DeadlineExceeded,
            aexc.TransportError,
            ConnectionError,
            TimeoutError,
        ),
    )


def over_grpc(err: Exception) -> bool:
    """Whether ``err`` came from a gRPC call (the Storage Read API) rather than REST."""
    from google.api_core import exceptions as gexc

    if isinstance(err, gexc.RetryError) and err.cause is not None:
        return over_grpc(err.cause)
    if not isinstance(err, gexc.GoogleAPICallError):
        return False
    import grpc  # errors translated from gRPC keep the RpcError as their response

    return isinstance(err.response, grpc.RpcError)


def auth_failure(err: Exception) -> bool:
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc

    if isinstance(err, (aexc.DefaultCredentialsError, aexc.RefreshError, gexc.Unauthenticated)):
        return True
    if isinstance(err, (gexc.Forbidden, gexc.PermissionDenied)):
        reasons = {e.get("reason") for e in (getattr(err, "errors", None) or [])}
        return not reasons & {"quotaExceeded", "rateLimitExceeded", "billingNotEnabled"}
    return False
