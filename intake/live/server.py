"""The live process: ``intake live``. An asyncio (aiohttp) server for the live streams of
the front-desk boards and the staff pages, kept apart from the web app's request threads
so that open screens can never starve the tablet or the API.

* ``GET /live/board``: an enrolled board's stream (device cookie);
* ``GET /live/staff``: a signed-in staff page's stream (the desk, the worklist, the case
  view), ended when the sign-in ends;
* ``GET /live/healthz``: the process and its hub are alive (counts only).

With ``--upstream`` (how ``intake serve`` runs it) it is also the front door: every other
request is read completely, under a deadline and a size limit, and only then handed to
the web app (gunicorn on a private socket), so a slow client never holds a web thread.
Behind a proxy such as nginx, route ``/live/`` here and the rest to gunicorn instead.

Limits: ``INTAKE_LIVE_STREAMS_PER_CLIENT`` streams per board or user (the oldest is
closed when a new one opens), ``INTAKE_LIVE_MAX_STREAMS`` in all (then 503), a request
must arrive whole within ``INTAKE_LIVE_REQUEST_TIMEOUT`` seconds, and a stream whose
client does not read is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from intake.audit import signing_key
from intake.auth import users
from intake.config import Settings
from intake.devices import services as devices
from intake.live import changes
from intake.live.hub import Hub, Stream, sse
from intake.storage.db import read_session_factory, session_factory
from intake.storage.models import DeviceKind, utcnow

log = logging.getLogger("intake.live")

T = TypeVar("T")
HUB: web.AppKey[Hub] = web.AppKey("hub", Hub)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
STREAM_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8",
                  "Cache-Control": "no-store", "X-Accel-Buffering": "no",
                  "X-Content-Type-Options": "nosniff"}


def _busy(text: str) -> web.Response:
    return web.Response(status=503, headers={"Retry-After": "5"}, text=text)


async def _open(request: web.Request, stream: Stream,
                first: Callable[[], str] | None = None) -> web.StreamResponse:
    """Serve one stream until it ends. ``first`` makes the event that goes before the
    alerts (a staff page: what it missed), made only once the stream is registered, so
    no change read meanwhile falls between it and the stream."""
    hub = request.app[HUB]
    settings = request.app[SETTINGS]
    # (The hub is fresh: _checked let the request in.) At the most streams, a board
    # gets in (in place of its own oldest stream, or a staff page's); a new staff
    # stream takes the place of its own sign-in's oldest.
    if len(hub.streams) >= settings.live_max_streams and not hub.make_room(stream):
        return _busy("too many open streams")
    response = web.StreamResponse(headers=STREAM_HEADERS)
    await response.prepare(request)
    # A browser reconnects two seconds after a dropped stream.
    await response.write(b"retry: 2000\n\n")
    hub.add(stream, per_principal=settings.live_streams_per_client, first=first)
    try:
        while True:
            text = await stream.queue.get()
            if text is None:
                break
            # A client that stops reading fills its socket; it is dropped, not waited on.
            async with asyncio.timeout(max(5.0, settings.live_heartbeat_seconds * 3)):
                await response.write(text.encode())
    except (ConnectionResetError, TimeoutError):
        pass
    finally:
        hub.remove(stream)
    with contextlib.suppress(Exception):
        await response.write_eof()
    return response


async def _checked(request: web.Request, check: Callable[[Hub, str | None], T],
                   cookie: str) -> T | web.Response:
    """Who opens a stream, or a refusal: 503 while the alerts cannot be read (nothing
    current to give: the page's stream fails and it says it is cut off, rather than
    showing an old list as if it were live), also when the check itself cannot reach
    the database."""
    hub = request.app[HUB]
    if not hub.fresh:
        return _busy("the alerts cannot be read now")
    try:
        return await asyncio.to_thread(check, hub, request.cookies.get(cookie))
    except Exception as exc:  # the database went away just now
        log.warning("live: could not check a stream's device or sign-in (%s)",
                    type(exc).__name__)
        return _busy("the alerts cannot be read now")


async def board_stream(request: web.Request) -> web.StreamResponse:
    device = await _checked(request, _identify_board, devices.COOKIE)
    if isinstance(device, web.Response):
        return device
    if device is None:
        return web.Response(status=401, text="not an enrolled board")
    stream = Stream("board", f"device:{device.id}", device.actor,
                    device_token=device.token_hash)
    return await _open(request, stream)


def _identify_board(hub: Hub, token: str | None) -> devices.Known | None:
    # A read: opening streams never queues behind (or holds up) the tablets' writes; the
    # hub notes connected boards once a minute.
    with hub.reads() as session:
        return devices.identify(session, token, kind=DeviceKind.BOARD)


async def staff_stream(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    active = await _checked(request, _load_session, users.SESSION_COOKIE)
    if isinstance(active, web.Response):
        return active
    if active is None:  # (every role is staff: the front desk, practitioners, admins)
        return web.Response(status=401, text="not signed in")
    # The cap counts per sign-in: one person's pages on two PCs never push each other out.
    stream = Stream("staff", f"session:{active.session_key}", active.name,
                    session_key=active.session_key)
    try:
        since: float | None = float(request.query.get("since", ""))
    except ValueError:
        since = None
    last = request.headers.get("Last-Event-ID") or request.query.get("last")
    cursor = changes.Cursor.parse(request.query.get("cursor"))
    return await _open(request, stream, lambda: hub.changes_since(last, since, cursor))


def _load_session(hub: Hub, token: str | None) -> users.Active | None:
    from datetime import timedelta

    idle = timedelta(minutes=hub.settings.session_idle_minutes)
    with hub.reads() as session:
        # Not activity: an open page alone must still reach the idle time-out. A read
        # only: an ended sign-in is removed (and audited) by the web app's next request.
        return users.load_session(session, token, now=utcnow(), idle=idle, touch=False,
                                  end_expired=False)


async def healthz(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    body = {"status": "ok" if hub.fresh else "stale", **hub.counts()}
    return web.json_response(body, status=200 if hub.fresh else 503,
                             headers={"Cache-Control": "no-store"})


def make_app(settings: Settings, *, upstream: str | None = None) -> web.Application:
    """The live process's application (``upstream``: also the front door for the web
    app, e.g. ``unix:/path/web.sock`` or ``http://127.0.0.1:8001``)."""
    limit = settings.max_body_bytes * 2 + 16384  # the web app answers 413 below this
    app = web.Application(client_max_size=limit)
    app[SETTINGS] = settings
    # (No HEAD: it would open a stream that counts against the caps.)
    app.router.add_get("/live/board", board_stream, allow_head=False)
    app.router.add_get("/live/staff", staff_stream, allow_head=False)
    app.router.add_get("/live/healthz", healthz)

    async def hub_context(app: web.Application) -> Any:
        # The hub's writes record audit events, sealed with these settings' key.
        hub = Hub(settings, reads=read_session_factory(settings.database_url),
                  writes=session_factory(settings.database_url,
                                         audit_key=signing_key(settings)))
        app[HUB] = hub
        await hub.start()
        yield
        await hub.stop()

    app.cleanup_ctx.append(hub_context)
    if upstream:
        from intake.live.proxy import Upstream

        proxy = Upstream(upstream, settings)
        app.router.add_route("*", "/{tail:.*}", proxy.handle)

        async def proxy_context(app: web.Application) -> Any:
            await proxy.open()
            yield
            await proxy.close()

        app.cleanup_ctx.append(proxy_context)
    return app


def run(settings: Settings, *, host: str, port: int, upstream: str | None = None) -> int:
    """Serve until SIGTERM or SIGINT; streams get a last ``bye`` and close."""

    async def main() -> None:
        app = make_app(settings, upstream=upstream)
        # keepalive_timeout also bounds how long a new connection may take to send its
        # request line and headers (aiohttp closes it if no request has arrived).
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                               keepalive_timeout=settings.live_request_timeout,
                               lingering_time=1.0, shutdown_timeout=5)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        log.info("live: serving on http://%s:%d%s", host, port,
                 f" in front of {upstream}" if upstream else "")
        print(f"intake live: on http://{host}:{port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        hub = app[HUB]
        for stream in list(hub.streams):
            stream.close("shutdown")
        await asyncio.sleep(0.1)  # let the goodbyes go out
        await runner.cleanup()

    asyncio.run(main())
    return 0


__all__ = ["make_app", "run", "sse"]
