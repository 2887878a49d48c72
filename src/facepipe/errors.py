"""The one error vocabulary of facepipe.

Every error carries its own HTTP status, gRPC status name and the seed pipeline's ``err_no`` so that
each protocol edge translates it once, in one place, without a table of its own.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class FacepipeError(Exception):
    """Base of every error facepipe raises on purpose."""

    code = "internal"
    http_status = 500
    grpc_status = "INTERNAL"
    seed_err_no = 10000

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(FacepipeError):
    code = "invalid_input"
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"
    seed_err_no = 5000


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"
    http_status = 413


class UnusableFace(InvalidInput):
    """A face was found but refused: its quality is below ``min_quality``, or ``require_live`` was
    asked and its anti-spoofing score says spoof. The message names the failing signal or score."""

    code = "unusable_face"
    http_status = 422


class UnsupportedMediaType(InvalidInput):
    code = "unsupported_media_type"
    http_status = 415


class NotFound(FacepipeError):
    code = "not_found"
    http_status = 404
    grpc_status = "NOT_FOUND"
    seed_err_no = 3002


class Conflict(FacepipeError):
    code = "conflict"
    http_status = 409
    grpc_status = "ALREADY_EXISTS"
    seed_err_no = 5000


class Unauthorized(FacepipeError):
    code = "unauthorized"
    http_status = 401
    grpc_status = "UNAUTHENTICATED"
    seed_err_no = 5000


class Forbidden(FacepipeError):
    code = "forbidden"
    http_status = 403
    grpc_status = "PERMISSION_DENIED"
    seed_err_no = 5000


class Overloaded(FacepipeError):
    """A bounded queue is full: the caller should back off and retry."""

    code = "overloaded"
    http_status = 503
    grpc_status = "UNAVAILABLE"
    seed_err_no = 10000


class NotReady(FacepipeError):
    code = "not_ready"
    http_status = 503
    grpc_status = "UNAVAILABLE"
    seed_err_no = 10000


class Unreachable(FacepipeError):
    """A client could not connect to the server."""

    code = "unreachable"
    http_status = 503
    grpc_status = "UNAVAILABLE"


class StoreUnavailable(FacepipeError):
    """The gallery's store (PostgreSQL) cannot be reached: writes are refused until it is back."""

    code = "store_unavailable"
    http_status = 503
    grpc_status = "UNAVAILABLE"


class DeadlineExceeded(FacepipeError):
    code = "deadline_exceeded"
    http_status = 504
    grpc_status = "DEADLINE_EXCEEDED"
    seed_err_no = 6000


class ConfigError(FacepipeError):
    """A configuration value is wrong; the message names the key path."""

    code = "config_error"


class MissingDependency(FacepipeError):
    """A feature needs an optional part of the install (an extra); the message names what to install."""

    code = "missing_dependency"
    http_status = 501
    grpc_status = "UNIMPLEMENTED"


class ModelError(FacepipeError):
    """A model could not be fetched, verified, converted or loaded."""

    code = "model_error"


class ConversionError(ModelError):
    code = "conversion_error"


class IntegrityError(ModelError):
    """A downloaded file does not match its pinned sha256."""

    code = "integrity_error"


def as_facepipe_error(exc: Exception) -> FacepipeError:
    """What an edge answers for ``exc``: our own errors as they are; anything else is a bug, logged
    with its traceback and reported to the client only by its type."""
    if isinstance(exc, FacepipeError):
        return exc
    log.error("internal error", exc_info=exc)
    return FacepipeError(f"internal error: {type(exc).__name__}")
