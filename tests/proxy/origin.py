"""An HTTP(S) origin on 127.0.0.1 for the proxy tests: it records every request
it gets, answers any path with a greeting naming the Host it was asked for, and
streams BIG bytes of "video" on /big."""

from __future__ import annotations

import ssl

from aiohttp import web

__all__ = ["BIG", "Origin", "start_origin"]

BIG = 8 * 1024 * 1024


class Origin:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(f"{request.host}{request.path_qs}")
        if request.path == "/big":
            resp = web.StreamResponse(headers={"Content-Type": "video/mp4"})
            await resp.prepare(request)
            chunk = b"v" * 65536
            for _ in range(BIG // len(chunk)):
                await resp.write(chunk)
            await resp.write_eof()
            return resp
        return web.Response(text=f"origin says hi to {request.host}")


async def start_origin(ssl_context: ssl.SSLContext | None = None
                       ) -> tuple[Origin, web.AppRunner]:
    o = Origin()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", o.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    o.port = runner.addresses[0][1]
    return o, runner
