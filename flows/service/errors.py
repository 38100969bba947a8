"""Every error the service returns is JSON with a status below 500 when the client caused it.

`ApiError` carries a status and a message meant for the caller: what was expected and what to do.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Send


class ApiError(Exception):
    """A request the service refuses, with the HTTP status to answer and a message for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": message, "status": status}


async def send_json_error(send: Send, status: int, message: str) -> None:
    """Answer from ASGI middleware, before any route runs (e.g. a body over the size limit)."""
    payload = json.dumps(error_body(status, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]}
    )
    await send({"type": "http.response.body", "body": payload})
