"""Errors a command can end in, each with the HTTP status the APIs answer it with."""

from __future__ import annotations


class CommandRejected(Exception):
    """The command is not allowed in the aggregate's current state (HTTP 409)."""

    status_code = 409

    def __init__(self, message: str, *, code: str = "conflict", details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or []


class NotFound(CommandRejected):
    status_code = 404

    def __init__(self, message: str) -> None:
        super().__init__(message, code="not_found")


class InvalidCommand(CommandRejected):
    """Well-formed input that breaks a rule known before any state is read (HTTP 422)."""

    status_code = 422

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message, code="invalid", details=details)


class Gone(CommandRejected):
    """It existed and was destroyed for good, e.g. a case's personal data after erasure (HTTP 410)."""

    status_code = 410

    def __init__(self, message: str) -> None:
        super().__init__(message, code="gone")
