"""The error of a failed service call, shared by the client's modules without a cycle."""

from __future__ import annotations

from resources.secrets import redact


class ServiceCallError(Exception):
    """A service call failed; the message is already free of secrets."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(redact(message))
        self.status = status
