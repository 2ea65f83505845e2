"""A half-open HTTP connection is closed after the head timeout; real requests and keep-alive work."""

from __future__ import annotations

import socket
import threading
import time

import pytest

uvicorn = pytest.importorskip("uvicorn")

from emolite.serve.conn import HeaderTimeoutProtocol  # noqa: E402

TIMEOUT = 0.5


class _Quick(HeaderTimeoutProtocol):
    header_timeout = TIMEOUT


async def _app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture()
def port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_app, host="127.0.0.1", port=free, http=_Quick, log_level="error"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    yield free
    server.should_exit = True
    t.join(5)


def _closed_within(s: socket.socket, seconds: float) -> bool:
    s.settimeout(seconds)
    try:
        return s.recv(1024) == b""
    except socket.timeout:
        return False


def test_partial_request_head_is_closed(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET / HTT")
        assert _closed_within(s, TIMEOUT * 6)


def test_slow_drip_does_not_rearm_the_deadline(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.time()
        for b in b"GET / HTTP/1.1\r\nHost: x":   # one byte every TIMEOUT / 4
            try:
                s.sendall(bytes([b]))
            except OSError:
                break
            time.sleep(TIMEOUT / 4)
            if time.time() - t0 > TIMEOUT * 4:
                break
        assert _closed_within(s, TIMEOUT * 4)
        assert time.time() - t0 < TIMEOUT * 8


def test_complete_requests_are_answered_on_a_kept_alive_connection(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(5)
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            reply = b""
            while not reply.endswith(b"ok"):
                reply += s.recv(1024)
            assert reply.startswith(b"HTTP/1.1 200")
        time.sleep(TIMEOUT / 2)   # idle but within the deadline: still open for a third
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert s.recv(1024).startswith(b"HTTP/1.1 200")
