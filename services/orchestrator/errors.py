"""The one error a simulation ends with: a code from the contract's closed set and a message."""

from __future__ import annotations

from contracts.events import ErrorCode, ErrorInfo

__all__ = ["SimulationFailure"]


class SimulationFailure(Exception):
    """A remote call failed in a way that ends the simulation with a ``failed`` event."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message

    def to_error_info(self) -> ErrorInfo:
        return ErrorInfo(code=self.code, message=self.message)
