"""The listening socket, and HTTP connections a client cannot hold open without sending.

uvicorn closes idle keep-alive connections but has no timeout for a request's head or body: a
client that sends half a request line, or a POST's headers and then nothing (or one byte every
few seconds), keeps its connection, its file descriptor and its `limit_concurrency` place for as
long as it likes; about a thousand of them made the server answer 503 to everyone.
`DeadlineProtocol` gives every wait on the client a deadline:

- a request head: HEADER_TIMEOUT s from the moment the server starts waiting for it, not
  re-armed by further bytes (slow drips count);
- a request body: BODY_TIMEOUT s from the end of its head, plus one second for every
  MIN_BODY_RATE bytes received (so a real upload over a slow link goes on; a stalled or
  dripping body is answered 408 and closed);
- and one address may keep at most WAITING_PER_ADDRESS connections waiting on its own head or
  body (the server keeps SHED_RESERVE places free of them): beyond that its oldest waiting
  connection is closed, so slow clients held before their deadline cannot crowd out a client
  that sends whole requests.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..options import OptionError

HEADER_TIMEOUT = 10.0       # s from connection (or the end of the last response) to a complete request head
BODY_TIMEOUT = 10.0         # s from a complete head for a body to get going ...
MIN_BODY_RATE = 16 << 10    # ... then one more second per this many bytes received (16 KiB/s on average)
WAITING_PER_ADDRESS = 32    # connections one client address may have waiting on its head or body
SHED_RESERVE = 64           # connection places kept free of waiting connections (at most 1/16 of the cap)
TIMEOUT_REPLY = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                 b"connection: close\r\ncontent-length: 41\r\n\r\nrequest body too slow; connection closed\n")
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request head and body, and a bound on the
    connections one address keeps waiting."""

    header_timeout: float = HEADER_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    min_body_rate: float = MIN_BODY_RATE
    waiting_per_address: int = WAITING_PER_ADDRESS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._timer: asyncio.TimerHandle | None = None
        self._upgraded = False
        self._phase: str | None = None    # "head" / "body": waiting on the client; None: not
        self._since = 0.0                 # loop time the current wait began
        self._body_bytes = 0
        super().connection_made(transport)
        self._shed()
        self._update()

    def data_received(self, data: bytes) -> None:
        if self._phase == "body":
            self._body_bytes += len(data)
        super().data_received(data)
        self._update()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._upgraded = True   # the WebSocket protocol takes over; the app's idle timeout applies
        self._update()
        super().handle_websocket_upgrade(event)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._update()   # keep-alive: uvicorn's own idle timer runs; ours for the next head

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self._phase = None
        super().connection_lost(exc)

    # ---- what the connection waits for, and until when

    def _phase_now(self) -> str | None:
        if self._upgraded or self.transport.is_closing():
            return None
        c = self.cycle
        if c is None or c.response_complete:
            return "head"
        return "body" if c.more_body and not c.disconnected else None   # None: the app has the request

    def _update(self) -> None:
        phase = self._phase_now()
        if phase == self._phase:
            return
        self._cancel()
        self._phase, self._since, self._body_bytes = phase, self.loop.time(), 0
        if phase is not None:
            self._timer = self.loop.call_at(self._deadline(), self._expire)

    def _deadline(self) -> float:
        if self._phase == "head":
            return self._since + self.header_timeout
        return self._since + self.body_timeout + self._body_bytes / self.min_body_rate

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._phase_now() != self._phase:
            self._update()
            return
        now = self.loop.time()
        if self._phase == "body" and self.flow.read_paused:   # the app is slow to read: not the client's fault
            self._since += 1.0
            self._timer = self.loop.call_at(max(self._deadline(), now + 1.0), self._expire)
        elif self._phase == "body" and now < self._deadline():   # bytes arrived meanwhile: more time
            self._timer = self.loop.call_at(self._deadline(), self._expire)
        else:
            self._close_waiting()

    def _close_waiting(self) -> None:
        """Close a connection that is waiting on its client (a body gets a 408 first)."""
        self._cancel()
        c = self.cycle
        if self._phase == "body" and c is not None and not c.response_started:
            self.transport.write(TIMEOUT_REPLY)
            c.disconnected = True   # the app's next receive() is a disconnect; its sends go nowhere
        self._phase = None
        self.connections.discard(self)   # counted free at once (uvicorn's connection_lost comes later)
        self.transport.close()

    def _shed(self) -> None:
        """On a new connection: close the oldest connection waiting on its client when this
        address has `waiting_per_address` of them, or when the server is nearly at its cap."""
        waiting = [c for c in self.connections if isinstance(c, DeadlineProtocol) and c is not self
                   and c._phase is not None]
        host = self.client[0] if self.client else None
        mine = [c for c in waiting if c.client and c.client[0] == host]
        cap = self.limit_concurrency
        full = cap is not None and len(self.connections) >= cap - max(1, min(SHED_RESERVE, cap // 16))
        pick = mine if len(mine) >= self.waiting_per_address else waiting if full else []
        if pick:
            min(pick, key=lambda c: c._since)._close_waiting()


HeaderTimeoutProtocol = DeadlineProtocol   # its former name


# ---------------------------------------------------------------- the listening socket


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port), before anything else happens, so that a wrong --host or a
    busy port is one line naming it and the fix. Port 0 binds a free port (see `url`)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        # a name with both kinds of address (localhost): its IPv4 one, which every client tries
        family, kind, proto, _, addr = next((f for f in found if f[0] == socket.AF_INET), found[0])
    except (socket.gaierror, UnicodeError) as e:
        raise OptionError(f"--host {host!r} is not a name or address this machine can find ({e}); use "
                          "127.0.0.1 (this machine only), 0.0.0.0 (every network) or one of its own addresses") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise OptionError(f"port {port} on {host} is already in use (another server?); stop it or "
                              "choose another --port (--port 0 picks a free one)") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise OptionError(f"--host {host!r} is not an address of this machine; use 127.0.0.1, 0.0.0.0 "
                              "or one of its own addresses") from None
        if e.errno == errno.EACCES:
            raise OptionError(f"port {port} needs root on this machine; choose a --port above 1023") from None
        raise OptionError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def url(host: str, sock: socket.socket, local_hosts: frozenset[str]) -> str:
    """The address to open in a browser for a bound socket: its real port; `localhost` for this
    machine's names and the wildcard addresses (browsers give the camera to localhost pages)."""
    port = sock.getsockname()[1]
    if host in local_hosts or host in WILDCARD_HOSTS:
        return f"http://localhost:{port}/"
    try:
        shown = f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        shown = host
    return f"http://{shown}:{port}/"
