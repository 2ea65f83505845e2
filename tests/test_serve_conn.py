"""A half-open HTTP connection is closed after the head timeout, a stalled or dripping body after
the body deadline, and one address's waiting connections are shed so that a client sending whole
requests is served; real requests, fair uploads and keep-alive work. Loopback only."""

from __future__ import annotations

import socket
import threading
import time

import pytest

uvicorn = pytest.importorskip("uvicorn")

from emolite.serve.conn import DeadlineProtocol  # noqa: E402

TIMEOUT = 0.5


class _Quick(DeadlineProtocol):
    header_timeout = TIMEOUT
    body_timeout = TIMEOUT
    min_body_rate = 4000.0     # bytes/s
    waiting_per_address = 4


async def _app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:   # read the whole body, as a form parser does
        m = await receive()
        if m["type"] == "http.disconnect":
            return
        more = m.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


LIMIT = 12   # uvicorn's limit_concurrency here: requests beyond it get 503


@pytest.fixture()
def port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_app, host="127.0.0.1", port=free, http=_Quick, log_level="error",
                                           limit_concurrency=LIMIT))
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
    """Whether the server closes `s` within `seconds` (after whatever it sends first)."""
    s.settimeout(seconds)
    try:
        while s.recv(1024):
            pass
        return True
    except socket.timeout:
        return False
    except OSError:   # reset
        return True


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


def _post_head(length: int) -> bytes:
    return f"POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: {length}\r\n\r\n".encode()


def _reply(s: socket.socket, seconds: float) -> bytes:
    """What the server sends until it closes (or `seconds` pass)."""
    s.settimeout(seconds)
    out = b""
    try:
        while chunk := s.recv(1024):
            out += chunk
    except socket.timeout:
        pass
    return out


def test_stalled_body_is_answered_408_and_closed(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.time()
        s.sendall(_post_head(1000) + b"x" * 10)   # the head, a little body, then nothing
        reply = _reply(s, TIMEOUT * 8)
        assert reply.startswith(b"HTTP/1.1 408") and b"too slow" in reply
        assert time.time() - t0 < TIMEOUT * 8


def test_body_dripping_below_the_minimum_rate_is_closed(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(_post_head(100_000))
        t0 = time.time()
        closed = False
        for _ in range(80):   # 10 bytes every TIMEOUT/10: 200 B/s against a minimum of 4000
            try:
                s.sendall(b"x" * 10)
            except OSError:
                closed = True
                break
            time.sleep(TIMEOUT / 10)
            if _closed_within(s, 0.001) or time.time() - t0 > TIMEOUT * 8:
                closed = time.time() - t0 <= TIMEOUT * 8
                break
        assert closed


def test_upload_at_a_fair_rate_outlasts_the_grace(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        n, chunk = 24, 1000   # 1000 bytes every TIMEOUT/10 (20 kB/s): longer than body_timeout in all
        s.sendall(_post_head(n * chunk))
        t0 = time.time()
        for _ in range(n):
            s.sendall(b"x" * chunk)
            time.sleep(TIMEOUT / 10)
        assert time.time() - t0 > TIMEOUT
        assert _reply(s, 5).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("kind", ["body", "head"])
def test_one_address_cannot_hold_every_place(port, kind):
    """LIMIT stalled connections from one address: uvicorn alone would answer 503 to everyone."""
    held = []
    try:
        for _ in range(LIMIT + 4):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(_post_head(1000) + b"x" if kind == "body" else b"GET / HTT")
            held.append(s)
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port)) as good:
            good.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert _reply(good, 5).startswith(b"HTTP/1.1 200")
        still = sum(not _closed_within(s, 0.05) for s in held)
        assert still <= _Quick.waiting_per_address
    finally:
        for s in held:
            s.close()


def test_bind_names_a_busy_port_and_url_shows_the_bound_one():
    from emolite.options import OptionError
    from emolite.serve.conn import bind, url

    local = frozenset({"127.0.0.1", "localhost", "::1"})
    first = bind("127.0.0.1", 0)
    try:
        first.listen()
        port = first.getsockname()[1]
        assert port != 0 and url("127.0.0.1", first, local) == f"http://localhost:{port}/"
        assert url("0.0.0.0", first, local) == f"http://localhost:{port}/"
        assert url("192.0.2.7", first, local) == f"http://192.0.2.7:{port}/"
        with pytest.raises(OptionError, match=f"port {port} on 127.0.0.1 is already in use.*--port"):
            bind("127.0.0.1", port)
    finally:
        first.close()
    with pytest.raises(OptionError, match="--host '192.0.2.7' is not an address of this machine"):
        bind("192.0.2.7", 0)   # TEST-NET-1: never this machine's
