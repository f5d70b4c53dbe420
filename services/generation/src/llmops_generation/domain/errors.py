"""The service's errors: each carries TGI's `error_type` and the HTTP status it maps to at the edge."""

from __future__ import annotations

from llmops_kit.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)


class GenerationServiceError(DomainError):
    """Base of every error a caller of the generation server can see."""

    http_status = 500
    error_type = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(self.error_type, message)


class ValidationError(GenerationServiceError, InvalidArgument):
    """A request TGI would reject before queueing it (HTTP 422, error_type `validation`)."""

    http_status = 422
    error_type = "validation"


class TemplateError(GenerationServiceError, InvalidArgument):
    """The chat template could not render the messages (HTTP 422, as TGI does)."""

    http_status = 422
    error_type = "template_error"


class OverloadedError(GenerationServiceError, Unavailable):
    """The queue is full (HTTP 429)."""

    http_status = 429
    error_type = "overloaded"


class GenerationError(GenerationServiceError):
    """The model failed while the request was running (HTTP 424)."""

    http_status = 424
    error_type = "generation"


class UnknownModel(GenerationServiceError, NotFound):
    """A request or an admin call named a model or adapter that is not loaded (HTTP 404)."""

    http_status = 404
    error_type = "not_found"


class Conflict(GenerationServiceError, FailedPrecondition):
    """An admin call that clashes with what is loaded (HTTP 409)."""

    http_status = 409
    error_type = "conflict"


class Unhealthy(GenerationServiceError, Unavailable):
    http_status = 503
    error_type = "healthcheck"


class Unauthorized(GenerationServiceError, Unauthenticated):
    """An admin route called without the admin key (HTTP 401)."""

    http_status = 401
    error_type = "unauthorized"


class Forbidden(GenerationServiceError, PermissionDenied):
    """A wrong admin key, admin routes switched off, or a path outside the models root (403)."""

    http_status = 403
    error_type = "forbidden"
