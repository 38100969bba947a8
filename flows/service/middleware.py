"""A request-body cap enforced while the body arrives, so an oversize upload never sits in memory whole."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flows.service.errors import send_json_error


class BodyLimit:
    """Refuse bodies over `max_bytes` with a JSON 413: on the declared Content-Length, else while reading.

    The body is read here (at most `max_bytes` kept) and replayed to the app, which covers chunked
    uploads that declare no length as well. The rest of an oversize body is read and dropped (up
    to `drain_bytes`) before answering: a client that is still sending when the server closes
    the connection sees a reset instead of the 413 and its message.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, drain_bytes: int = 64 * 1024 * 1024) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = max(drain_bytes, max_bytes)

    def _too_large(self, size: int | str) -> str:
        limit = self.max_bytes
        return (
            f"request body of {size} bytes is over the limit of {limit} bytes; send fewer or smaller images"
        )

    async def _drain(self, receive: Receive, seen: int, more: bool) -> None:
        """Read and drop what is left of the body, up to `drain_bytes` in all."""
        while more and seen <= self.drain_bytes:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            seen += len(message.get("body", b""))
            more = bool(message.get("more_body"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_json_error(send, 400, "Content-Length must be a whole number of bytes")
                return
            if int(declared) > self.max_bytes:
                if int(declared) <= self.drain_bytes:
                    await self._drain(receive, 0, True)
                await send_json_error(send, 413, self._too_large(int(declared)))
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            more = bool(message.get("more_body"))
            if size > self.max_bytes:
                await self._drain(receive, size, more)
                await send_json_error(send, 413, self._too_large(f"more than {self.max_bytes}"))
                return
            chunks.append(chunk)
            if not more:
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
