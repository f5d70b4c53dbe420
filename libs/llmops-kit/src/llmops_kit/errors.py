"""One exception hierarchy for every service, mapped to gRPC status codes once, at the edge."""

from __future__ import annotations

import grpc


class DomainError(Exception):
    """An error the caller can act on. `reason` is a stable, machine-readable code."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(DomainError):
    """A dependency (Kafka, Weaviate, another service) cannot be reached; retrying may help."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(DomainError):
    """The caller's deadline passed before the work could finish."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class PoisonMessage(Exception):
    """An event that can never be processed; it goes to the dead-letter topic with `reason`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS
