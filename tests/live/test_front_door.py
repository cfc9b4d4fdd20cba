"""The live process as the front door of the web app (``intake live --upstream``, how
``intake serve`` runs it): requests and responses pass intact (status, body, headers,
every Set-Cookie, HEAD, redirects, large streamed downloads); the app sees the real
client address, never one the client wrote into X-Forwarded-For; a client that stalls
is cut off without holding anything up; slow or oversized bodies never reach the app;
an app that is down gets a 502 the browser retries; ``/live/healthz`` is the door's own.

The web app is the real Flask app served by werkzeug in a thread (over TCP, and over a
Unix socket as ``intake serve`` does), with ``proxy_hops=1``: one hop more than the
clinic configured (none), as ``intake serve`` sets it. A small WSGI wrapper records what
reached the app.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from intake import audit, state
from intake.serve import free_port
from support import TOKEN_RE
from support.auth import PASSWORD, make_user, signed_in_client
from support.browser import Server, serve_app
from support.live import audit_rows, session_cookies
from support.processes import LiveProcess

TIMEOUT = 2.0  # INTAKE_LIVE_REQUEST_TIMEOUT of the door
CSS = Path(__file__).resolve().parents[2] / "intake" / "kiosk" / "static" / "kiosk.css"
CLIENT = "127.0.0.2"  # a client address other than the door's own (loopback is a /8)


PIECES = (b"a" * 50_000, b"b" * 50_000)  # what /_test/pieces sends, in two writes


class Recorder:
    """WSGI middleware: notes each request that reached the app (before ProxyFix).
    ``/_test/pieces`` is its own: a response with a Content-Length whose body comes in
    two writes 0.3 s apart, as gunicorn sends a file the app yields block by block."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[dict[str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.seen.append({
            "method": environ["REQUEST_METHOD"], "path": environ.get("PATH_INFO", ""),
            "x-forwarded-for": environ.get("HTTP_X_FORWARDED_FOR", ""),
            "x-forwarded-proto": environ.get("HTTP_X_FORWARDED_PROTO", ""),
            "x-forwarded-host": environ.get("HTTP_X_FORWARDED_HOST", ""),
            "host": environ.get("HTTP_HOST", "")})
        if environ.get("PATH_INFO") == "/_test/pieces":
            start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                      ("Content-Length", str(sum(map(len, PIECES)))),
                                      ("X-Test", "pieces")])
            return self._pieces()
        return self.app(environ, start_response)

    @staticmethod
    def _pieces() -> Iterator[bytes]:
        yield PIECES[0]
        time.sleep(0.3)
        yield PIECES[1]

    def reached(self, method: str, path: str) -> int:
        return sum(1 for r in self.seen if r["method"] == method and r["path"] == path)


@dataclass
class Door:
    app: Any
    web: Server
    recorder: Recorder
    live: LiveProcess  # in front of the web app
    down: LiveProcess  # in front of nothing
    unix: LiveProcess  # in front of the web app on a Unix socket


@pytest.fixture(scope="module")
def door(make_world: Any) -> Iterator[Door]:
    from werkzeug.serving import make_server

    world = make_world(proxy_hops="1")
    recorder = Recorder(world.app)
    web = serve_app(recorder)
    sock_path = world.folder / "web.sock"
    unix_server = make_server(f"unix://{sock_path}", 0, recorder, threaded=True)
    unix_thread = threading.Thread(target=unix_server.serve_forever, daemon=True)
    unix_thread.start()
    processes = [world.live(redis=False, upstream=web.base, wait=False,
                            live_request_timeout=str(TIMEOUT)),
                 world.live(redis=False, upstream=f"http://127.0.0.1:{free_port()}",
                            wait=False),
                 world.live(redis=False, upstream=f"unix:{sock_path}", wait=False)]
    for process in processes:
        process.wait_ready()
    yield Door(world.app, web, recorder, *processes)
    world.stack.close()  # the door goes before the app behind it
    web.stop()
    unix_server.shutdown()
    unix_thread.join(timeout=10)


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    cookies: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        found = self.all(name)
        return found[0] if found else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def fetch(base: str, method: str, path: str, *, body: bytes | None = None,
          headers: dict[str, str] | None = None, cookies: dict[str, str] | None = None,
          source: str | None = None, timeout: float = 10) -> Reply:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout,
                                      source_address=(source, 0) if source else None)
    sent = dict(headers or {})
    if cookies:
        sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    try:
        conn.request(method, path, body=body, headers=sent)
        resp = conn.getresponse()
        reply = Reply(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()
    for value in reply.all("Set-Cookie"):
        name, _, rest = value.partition("=")
        reply.cookies[name] = rest.split(";", 1)[0]
    return reply


def sign_in_form(base: str, name: str, password: str, *, source: str | None = None,
                 headers: dict[str, str] | None = None) -> Reply:
    """The sign-in form as a browser posts it: GET the page (a CSRF cookie and token),
    then POST with the cookie, the token and the page's own Origin."""
    page = fetch(base, "GET", "/auth/signin", source=source)
    token = TOKEN_RE.search(page.text)
    assert page.status == 200 and token, page.status
    body = (f"name={name}&password={password.replace(' ', '+')}"
            f"&csrf_token={token.group(1)}").encode()
    return fetch(base, "POST", "/auth/signin", body=body, cookies=page.cookies,
                 source=source, headers={"Content-Type": "application/x-www-form-urlencoded",
                                         "Origin": base, **(headers or {})})


# --- requests and responses pass intact ---------------------------------------------


def test_get_passes_status_body_and_headers(door: Door) -> None:
    direct = fetch(door.web.base, "GET", "/kiosk/static/kiosk.css")
    via = fetch(door.live.base, "GET", "/kiosk/static/kiosk.css")
    assert via.status == direct.status == 200
    assert via.body == direct.body == CSS.read_bytes()
    for name in ("Content-Type", "ETag", "Last-Modified", "Cache-Control",
                 "Content-Security-Policy", "X-Content-Type-Options"):
        assert via.header(name) == direct.header(name), name
    # A conditional GET is answered by the app, not the door.
    etag = via.header("ETag")
    assert etag
    assert fetch(door.live.base, "GET", "/kiosk/static/kiosk.css",
                 headers={"If-None-Match": etag}).status == 304
    # The query string goes along; a 404 and a redirect come back as they are.
    assert 'lang="en"' in fetch(door.live.base, "GET", "/auth/signin?lang=en").text
    assert fetch(door.live.base, "GET", "/no/such/page").status == 404
    redirect = fetch(door.live.base, "GET", "/review?lang=en")
    assert redirect.status == fetch(door.web.base, "GET", "/review?lang=en").status == 303
    assert redirect.header("Location") == "/auth/signin?next=%2Freview%3Flang%3Den&lang=en"


def test_a_response_in_pieces_keeps_its_length(door: Door) -> None:
    """The door reads up to a megabyte of a response before writing it (so the app's
    thread is free even when the client reads slowly) and the Content-Length stays:
    also when the body reaches the door in more than one piece."""
    direct = fetch(door.web.base, "GET", "/_test/pieces")
    assert direct.header("Content-Length") == "100000"
    via = fetch(door.live.base, "GET", "/_test/pieces")
    assert via.status == 200 and via.body == b"".join(PIECES)
    assert via.header("X-Test") == "pieces"
    assert via.header("Content-Length") == "100000", via.headers


def test_post_passes_with_every_cookie(door: Door) -> None:
    make_user(door.app, "desk-door", "front_desk")
    signed = sign_in_form(door.live.base, "desk-door", PASSWORD)
    assert signed.status == 303, signed.text[:500]
    assert signed.header("Location") == "/desk"
    set_cookies = signed.all("Set-Cookie")
    assert sorted(c.split("=", 1)[0] for c in set_cookies) == ["intake_csrf", "intake_session"]
    for cookie in set_cookies:
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # The cookies work through the door: the desk page knows who is signed in.
    desk = fetch(door.live.base, "GET", "/desk?lang=en", cookies=signed.cookies)
    assert desk.status == 200 and "desk-door" in desk.text
    assert desk.header("Content-Security-Policy") == fetch(
        door.web.base, "GET", "/desk?lang=en", cookies=signed.cookies
    ).header("Content-Security-Policy")


def test_head_works(door: Door) -> None:
    head = fetch(door.live.base, "HEAD", "/kiosk/static/kiosk.css")
    assert head.status == 200 and head.body == b""
    assert head.header("Content-Length") == str(len(CSS.read_bytes()))
    assert head.header("Content-Type") == "text/css; charset=utf-8"
    page = fetch(door.live.base, "HEAD", "/auth/signin")
    assert page.status == 200 and page.body == b""
    assert door.recorder.reached("HEAD", "/kiosk/static/kiosk.css") >= 1


def test_the_unix_socket_upstream_passes_too(door: Door) -> None:
    via = fetch(door.unix.base, "GET", "/kiosk/static/kiosk.css")
    assert via.status == 200 and via.body == CSS.read_bytes()
    make_user(door.app, "desk-unix", "front_desk")
    signed = sign_in_form(door.unix.base, "desk-unix", PASSWORD)
    assert signed.status == 303 and "intake_session" in signed.cookies


# --- who the client is --------------------------------------------------------------


def test_the_app_sees_the_client_and_not_a_forged_header(door: Door) -> None:
    make_user(door.app, "desk-forged", "front_desk")
    before = len(door.recorder.seen)
    forged = {"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https",
              "X-Forwarded-Host": "evil.example"}
    failed = sign_in_form(door.live.base, "desk-forged", "wrong password",
                          source=CLIENT, headers=forged)
    assert failed.status == 403
    (event,) = audit_rows(door.app, "signin.failed")
    assert event.actor == "desk-forged"
    assert event.source == CLIENT  # the real client, not 1.2.3.4, not the door
    # What reached the app: the client's own header first, the door's value last.
    post = [r for r in door.recorder.seen[before:] if r["method"] == "POST"][-1]
    assert post["x-forwarded-for"] == f"1.2.3.4, {CLIENT}"
    assert post["x-forwarded-proto"] == "https, http"
    assert post["x-forwarded-host"] == f"evil.example, {door.live.base[7:]}"
    # Plain HTTP stays plain: a forged "https" does not make the cookies Secure.
    signed = sign_in_form(door.live.base, "desk-forged", PASSWORD, source=CLIENT,
                          headers=forged)
    assert signed.status == 303
    assert not any("Secure" in c for c in signed.all("Set-Cookie"))
    (ok,) = [e for e in audit_rows(door.app, "signin.succeeded") if e.actor == "desk-forged"]
    assert ok.source == CLIENT


# --- clients that stall or send too much -------------------------------------------


def _closed_within(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closed the connection, and what it sent first."""
    started = time.monotonic()
    received = b""
    while time.monotonic() - started < limit:
        ready, _, _ = select.select([sock], [], [], 0.05)
        if not ready:
            continue
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return time.monotonic() - started, received
        if not chunk:
            return time.monotonic() - started, received
        received += chunk
    raise AssertionError(f"still open after {limit}s (received {received[:200]!r})")


def _connect(live: LiveProcess) -> socket.socket:
    return socket.create_connection((live.host, live.port), timeout=10)


def test_a_client_that_stalls_is_cut_off_while_others_are_served(door: Door) -> None:
    stalled = {
        "nothing": b"",
        "half a request line": b"GET /kio",
        "half the headers": b"GET /kiosk/static/kiosk.css HTTP/1.1\r\nHost: 127.0.0.1\r\nAcc",
        "no blank line": b"GET /kiosk/static/kiosk.css HTTP/1.1\r\nHost: 127.0.0.1\r\n",
    }
    sockets = {}
    for name, sent in stalled.items():
        sockets[name] = _connect(door.live)
        if sent:
            sockets[name].sendall(sent)
    opened = time.monotonic()
    # And one that sends its headers a byte every 0.2 s (never idle, never done).
    dripping = _connect(door.live)
    dripping.sendall(b"GET /kiosk/static/kiosk.css HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    stop = threading.Event()

    def drip() -> None:
        try:
            while not stop.wait(0.2):
                dripping.sendall(b"z")
        except OSError:
            pass

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    sockets["a header a byte at a time"] = dripping
    try:
        # Meanwhile everyone else is served at once.
        for _ in range(3):
            started = time.monotonic()
            assert fetch(door.live.base, "GET", "/kiosk/static/kiosk.css").status == 200
            assert fetch(door.live.base, "GET", "/live/healthz").status == 200
            assert time.monotonic() - started < 0.5
        for name, sock in sockets.items():
            _, answer = _closed_within(sock, TIMEOUT + 3 - (time.monotonic() - opened))
            assert time.monotonic() - opened <= TIMEOUT + 1.5, name
            assert b"200 OK" not in answer, name
    finally:
        stop.set()
        dripper.join(timeout=5)
        for sock in sockets.values():
            sock.close()


def _status(raw: bytes) -> int:
    line = raw.split(b"\r\n", 1)[0].decode()
    assert line.startswith("HTTP/1."), raw[:200]
    return int(line.split()[1])


def test_a_body_slower_than_the_deadline_gets_408(door: Door) -> None:
    before = door.recorder.reached("POST", "/auth/signin")
    sock = _connect(door.live)
    head = (b"POST /auth/signin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 400\r\n\r\n")
    stop = threading.Event()

    def trickle() -> None:
        try:
            sock.sendall(head)
            while not stop.wait(0.25):
                sock.sendall(b"name=a&x=")  # 9 bytes a quarter second: 400 take 11 s
        except OSError:
            pass

    sender = threading.Thread(target=trickle, daemon=True)
    started = time.monotonic()
    sender.start()
    try:
        answer = _response_within(sock, TIMEOUT + 4)
        answered = time.monotonic() - started
    finally:
        stop.set()
        sender.join(timeout=5)
        sock.close()
    assert _status(answer) == 408
    assert TIMEOUT - 0.3 <= answered <= TIMEOUT + 1.5
    assert door.recorder.reached("POST", "/auth/signin") == before  # never reached the app


def _response_within(sock: socket.socket, limit: float) -> bytes:
    """The head of the first response on the connection (up to its blank line)."""
    started = time.monotonic()
    received = b""
    while b"\r\n\r\n" not in received:
        assert time.monotonic() - started < limit, f"no response within {limit}s"
        ready, _, _ = select.select([sock], [], [], 0.05)
        if ready:
            chunk = sock.recv(65536)
            assert chunk, f"closed without a response ({received[:200]!r})"
            received += chunk
    return received


def _post_raw(live: LiveProcess, head: bytes, body_chunks: list[bytes]) -> bytes:
    sock = _connect(live)
    try:
        try:
            sock.sendall(head)
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the door answered and closed before the whole body was sent
        return _closed_within(sock, 10)[1]
    finally:
        sock.close()


def test_a_body_over_the_limit_gets_413(door: Door) -> None:
    before = door.recorder.reached("POST", "/auth/signin")
    size = 200_000  # over the door's limit (twice INTAKE_MAX_BODY_BYTES and a margin)
    body = b"name=" + b"a" * (size - 5)
    head = (b"POST /auth/signin HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n")
    assert _status(_post_raw(door.live, head + f"Content-Length: {size}\r\n\r\n".encode(),
                             [body])) == 413
    chunks = [f"{len(body[i:i + 8192]):x}\r\n".encode() + body[i:i + 8192] + b"\r\n"
              for i in range(0, size, 8192)] + [b"0\r\n\r\n"]
    assert _status(_post_raw(door.live, head + b"Transfer-Encoding: chunked\r\n\r\n",
                             chunks)) == 413
    assert door.recorder.reached("POST", "/auth/signin") == before
    # Under the door's limit but over the app's: the app's own 413 comes back.
    size = 100_000
    reply = fetch(door.live.base, "POST", "/auth/signin", body=b"name=" + b"a" * (size - 5),
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 413
    assert door.recorder.reached("POST", "/auth/signin") == before + 1


def test_an_app_that_is_down_gets_502_to_retry(door: Door) -> None:
    asked = time.monotonic()
    reply = fetch(door.down.base, "GET", "/kiosk")
    waited = time.monotonic() - asked
    assert reply.status == 502
    assert 2.5 <= waited <= 6, waited  # it waited for the app to come back first
    assert reply.header("Retry-After") == "2"
    assert reply.header("Cache-Control") == "no-store"
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    assert "しばらくお待ちください" in reply.text
    # The door itself is fine.
    assert door.down.health()["status"] == "ok"


def test_an_app_that_comes_back_within_seconds_answers_the_waiting_request(
        make_world: Any) -> None:
    """The web app restarting (or its socket's queue full): nothing was sent, so the
    door tries again for a few seconds, and the tablet's request, even a POST, is
    answered rather than refused."""
    world = make_world(proxy_hops="1")
    port = free_port()
    live = world.live(redis=False, upstream=f"http://127.0.0.1:{port}")
    replies: list[Any] = []
    thread = threading.Thread(target=lambda: replies.append(fetch(
        live.base, "POST", "/auth/signin", body=b"name=a&password=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"})))
    thread.start()
    time.sleep(1.0)  # the app is down for a second...
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, world.app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        thread.join(timeout=10)
        [reply] = replies
        assert reply.status in (400, 401, 403, 422), reply.status  # the app's own answer
        assert "しばらくお待ちください" not in reply.text
    finally:
        server.shutdown()
        serving.join(timeout=10)


def test_healthz_is_the_doors_own(door: Door) -> None:
    before = len(door.recorder.seen)
    status, headers, body = door.live.get("/live/healthz")
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert b'"status": "ok"' in body or b'"status":"ok"' in body
    assert len(door.recorder.seen) == before


# --- large responses ----------------------------------------------------------------


def test_a_large_streamed_download_arrives_whole(door: Door) -> None:
    app = door.app
    admin = signed_in_client(app, "admin", "admin-door")
    # Over a megabyte of audit trail (the CSV is streamed by the app, in chunks).
    with app.app_context(), state(app).sessions.begin() as s:
        for n in range(300):
            audit.record(s, actor="test", action="test.padding", entity_type="test",
                         entity_id=str(n), detail={"padding": f"{n:04d}" * 1000})
    cookies = session_cookies(admin)
    via = fetch(door.live.base, "GET", "/admin/audit.csv", cookies=cookies, timeout=30)
    assert via.status == 200, via.text[:500]
    assert via.header("Content-Type") == "text/csv; charset=utf-8"
    assert via.header("Content-Disposition", ) is not None
    assert len(via.body) > 1_200_000
    direct = fetch(door.web.base, "GET", "/admin/audit.csv", cookies=cookies, timeout=30)
    assert direct.status == 200
    # The direct download is the same file with one more line: its own export event.
    assert direct.body.startswith(via.body)
    extra = direct.body[len(via.body):].decode()
    assert extra.count("\r\n") == 1 and "audit.exported" in extra
    assert via.body.decode("utf-8-sig").count("test.padding") == 300
