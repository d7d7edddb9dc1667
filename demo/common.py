"""What the demo server's modules share: fixed pseudo-random numbers, JSON errors, integer
query parameters and opaque cursors."""

from __future__ import annotations

import base64
import binascii
import hashlib


def stable_int(salt: str, number: int) -> int:
    """A pseudo-random but fixed non-negative integer for (salt, number)."""
    digest = hashlib.sha256(f"{salt}:{number}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class ApiError(Exception):
    """Ends a request with a JSON error body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def int_param(query: dict[str, list[str]], name: str, default: int, limits: tuple[int, int]) -> int:
    """The integer query parameter `name` (the last one when repeated), else `default`.

    Raises:
        ApiError: 400 when it is not an integer or outside `limits` (inclusive).
    """
    raw = query.get(name, [str(default)])[-1]
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query parameter {name!r} must be an integer, got {raw!r}") from None
    if not limits[0] <= value <= limits[1]:
        raise ApiError(400, f"query parameter {name!r} must be in {limits[0]}..{limits[1]}")
    return value


def encode_cursor(offset: int, prefix: str = "orders") -> str:
    """An opaque cursor for a position in a list (base64 of `<prefix>:<offset>`)."""
    return base64.urlsafe_b64encode(f"{prefix}:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, prefix: str = "orders") -> int:
    """The offset in a cursor made by `encode_cursor` with the same prefix.

    Raises:
        ApiError: 400 for anything else.
    """
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        found, offset = text.split(":")
        if found == prefix and offset.isdigit():
            return int(offset)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ApiError(400, f"invalid cursor {cursor!r}")
