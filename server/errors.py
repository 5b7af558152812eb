"""The API's error: an HTTP status, a machine-readable type and a message."""

from __future__ import annotations

from envs.errors import public_message


class ApiError(Exception):
    """Answered as `{"error": {"type", "message"}}` with `status` (and `headers`).

    The message goes to a client: every absolute path in it is cut to its last part
    (`envs.errors.public_message`), whatever raised it (an env's loader, the OS)."""

    def __init__(self, status: int, type_: str, message: str, headers: dict[str, str] | None = None):
        message = public_message(message)
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"type": self.type, "message": self.message}}


__all__ = ["ApiError", "public_message"]
