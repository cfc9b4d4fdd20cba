"""The front door of ``intake serve``: each request is read whole (headers within the
server's request deadline, the body within ``INTAKE_LIVE_REQUEST_TIMEOUT`` and a size
limit) before it is handed to the web app, so the web app's threads only ever serve
complete requests and a slow or stalled client costs a coroutine here, nothing there.

The client's address, scheme and host are appended to ``X-Forwarded-For``, ``-Proto``
and ``-Host``; the web app behind trusts one more proxy than it is configured for
(``intake serve`` sets ``INTAKE_PROXY_HOPS`` accordingly), and listens on a private
socket that nothing else can reach, so those headers cannot be forged around it.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from intake.config import Settings

log = logging.getLogger("intake.live")

# Headers of one connection, not of the message (RFC 9110 section 7.6.1).
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate",
                        "proxy-authorization", "proxy-connection", "te", "trailer",
                        "transfer-encoding", "upgrade"})
# Up to this much of a response is read before it is written to the client, so the web
# app's thread is free even when the client reads slowly; larger ones are relayed.
BUFFERED = 1 << 20
# How long a request waits for the web app to accept a connection (a restart of it, or a
# full listen queue) before the client gets 502.
CONNECT_PATIENCE = 3.0
_BUSY_HTML = ("<!doctype html><html lang=\"ja\"><meta charset=\"utf-8\">"
              "<title>しばらくお待ちください</title><p>ただいま応答できません。数秒後にもう一度"
              "お試しください。</p><p lang=\"en\">Temporarily unavailable: please try again "
              "in a few seconds.</p></html>")


class Upstream:
    """The web app behind the front door: ``unix:/path`` or ``http://host:port``."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self.session: aiohttp.ClientSession | None = None
        if url.startswith("unix:"):
            self.base = "http://intake-web"
        else:
            self.base = url.rstrip("/")

    async def open(self) -> None:
        # A new connection per request (cheap on this machine): a kept-alive one can be
        # closed by the web app just as a request is written to it, and a request lost
        # that way cannot safely be sent again.
        if self.url.startswith("unix:"):
            connector: aiohttp.BaseConnector = aiohttp.UnixConnector(
                path=self.url[len("unix:"):], limit=64, force_close=True)
        else:
            connector = aiohttp.TCPConnector(limit=64, force_close=True)
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=120),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def _headers(self, request: web.Request) -> list[tuple[str, str]]:
        out = [(k, v) for k, v in request.headers.items()
               if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]

        def append(name: str, value: str) -> None:
            current = [v for k, v in out if k.lower() == name.lower()]
            out[:] = [(k, v) for k, v in out if k.lower() != name.lower()]
            out.append((name, ", ".join([*current, value])))

        append("X-Forwarded-For", request.remote or "unknown")
        append("X-Forwarded-Proto", request.scheme)
        append("X-Forwarded-Host", request.host)
        return out

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self.session is not None
        try:
            async with asyncio.timeout(self.settings.live_request_timeout):
                body = await request.read()
        except TimeoutError:
            return web.Response(status=408, text="request body too slow",
                                headers={"Connection": "close"})
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="request body too large",
                                headers={"Connection": "close"})
        headers = self._headers(request)
        delay, deadline = 0.05, asyncio.get_running_loop().time() + CONNECT_PATIENCE
        while True:
            try:
                upstream = await self.session.request(
                    request.method, self.base + request.rel_url.raw_path_qs,
                    headers=headers, data=body if body else None, allow_redirects=False)
                break
            except aiohttp.ClientConnectorError as exc:
                # Not connected, so nothing was sent: safe to try again, whatever the
                # method (the web app restarting, or its socket's queue full under load).
                if asyncio.get_running_loop().time() + delay < deadline:
                    await asyncio.sleep(delay)
                    delay = min(0.5, delay * 2)
                    continue
                return self._unavailable(exc)
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                return self._unavailable(exc)
        try:
            return await self._relay(request, upstream)
        finally:
            upstream.release()

    def _unavailable(self, exc: BaseException) -> web.Response:
        log.warning("live: the web app did not answer (%s %s)", type(exc).__name__,
                    getattr(exc, "strerror", None) or "")
        return web.Response(status=502, text=_BUSY_HTML, content_type="text/html",
                            headers={"Retry-After": "2", "Cache-Control": "no-store"})

    async def _relay(self, request: web.Request,
                     upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        headers = CIMultiDict((k, v) for k, v in upstream.headers.items()
                              if k.lower() not in HOP_BY_HOP and k.lower() != "content-length")
        if request.method == "HEAD":
            if upstream.content_length is not None:
                headers["Content-Length"] = str(upstream.content_length)
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                          headers=headers)
            await response.prepare(request)
            await response.write_eof()
            return response
        # Read up to BUFFERED bytes whatever pieces they come in (read(n) returns what
        # has arrived), so a slow client of an ordinary page never holds the web app.
        first = bytearray()
        while len(first) < BUFFERED and not upstream.content.at_eof():
            piece = await upstream.content.read(BUFFERED - len(first))
            if not piece:
                break
            first += piece
        if upstream.content.at_eof():
            return web.Response(status=upstream.status, reason=upstream.reason,
                                body=bytes(first), headers=headers)
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                      headers=headers)
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        await response.prepare(request)
        await response.write(bytes(first))
        async for chunk in upstream.content.iter_chunked(65536):
            await response.write(chunk)
        await response.write_eof()
        return response
