"""The API's error: an HTTP status, a machine-readable type and a message."""

from __future__ import annotations


class ApiError(Exception):
    """Answered as `{"error": {"type", "message"}}` with `status` (and `headers`)."""

    def __init__(self, status: int, type_: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"type": self.type, "message": self.message}}
