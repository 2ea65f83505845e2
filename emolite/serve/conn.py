"""HTTP connections a client cannot hold open without sending a request.

uvicorn closes idle keep-alive connections but has no timeout for a request's head: a client
that connects and sends half a request line (or one byte every few seconds) keeps its
connection, and its file descriptor and `limit_concurrency` place, for as long as it likes.
`HeaderTimeoutProtocol` gives every request head HEADER_TIMEOUT seconds from the moment the
server starts waiting for it; the timer is not re-armed by further bytes (slow drips count).
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = 10.0   # s from connection (or the end of the last response) to a complete request head


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request head."""

    header_timeout: float = HEADER_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        self._upgraded = False
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_head():
            self._arm()
        else:
            self._disarm()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._upgraded = True   # the WebSocket protocol takes over; the app's idle timeout applies
        self._disarm()
        super().handle_websocket_upgrade(event)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._waiting_for_head():  # keep-alive: uvicorn's own idle timer runs; ours for the next head
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _waiting_for_head(self) -> bool:
        busy = self.cycle is not None and not self.cycle.response_complete
        return not (self._upgraded or busy or self.transport.is_closing())

    def _arm(self) -> None:
        if self._head_timer is None and not self._upgraded:
            self._head_timer = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expire(self) -> None:
        self._head_timer = None
        if self._waiting_for_head():
            self.transport.close()
