"""The ICAP server on a real loopback socket: what Squid would see.

Allowed → 204 (or the request unchanged without `Allow: 204`), blocked → the
proxy's 451, each decision recorded with the forwarded client; persistent
connections, previews whose rest never crosses, malformed input → an ICAP
error and a closed connection, never a crash.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

from tests.icap.conftest import ACTS, icap_policy, make_holder
from tests.icap.messages import GET, POST, parse_answer, reqmod
from writ.audit import MemorySink
from writ.blocklist import Blocklist, BlocklistHolder
from writ.icap import IcapServer, run_icap
from writ.metrics import Metrics
from writ.policies import FailMode

OPTIONS = b"OPTIONS icap://127.0.0.1/writ ICAP/1.0\r\nHost: 127.0.0.1\r\n\r\n"


class Client:
    """One persistent ICAP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: IcapServer) -> Client:
        host, port = server.addresses[0]
        return cls(*await asyncio.open_connection(host, port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> tuple[str, dict[str, str], bytes]:
        """One ICAP answer, its encapsulated part read by its offsets and chunks."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        line, h, _ = parse_answer(head)
        encap = dict(item.strip().split("=") for item in h.get("encapsulated", "").split(","))
        body_key = next(k for k in encap if k.endswith("body"))
        rest = await self.reader.readexactly(int(encap[body_key]))
        if body_key != "null-body":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                rest += await self.reader.readexactly(size)
                await self.reader.readexactly(2)
                if size == 0:
                    break
        return line, h, rest

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 10) == b""

    def close(self) -> None:
        self.writer.close()


def http_get(url: str, host: str) -> bytes:
    return f"GET {url} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def test_options_then_requests_on_one_connection(server: IcapServer,
                                                       sink: MemorySink) -> None:
    c = await Client.open(server)
    await c.send(OPTIONS)
    line, h, _ = await c.answer()
    assert line == "ICAP/1.0 200 OK"
    assert h["methods"] == "REQMOD"
    assert h["preview"] == "0"
    assert h["max-connections"] == "1024"
    assert h["istag"].startswith('"writ-')
    # blocked: the proxy's 451, naming the order
    await c.send(reqmod(http_get("http://blocked.example/a", "blocked.example")))
    line, h, rest = await c.answer()
    assert line == "ICAP/1.0 200 OK"
    assert h["encapsulated"].startswith("res-hdr=0, res-body=")
    assert rest.startswith(b"HTTP/1.1 451 Unavailable For Legal Reasons\r\n")
    assert b"Cache-Control: no-store" in rest
    assert b'Link: <https://isp.example/blocking>; rel="blocked-by"' in rest
    assert b"ORD-BLOCKED" in rest
    # the kept URL of a restored host: 451; another URL there: 204
    await c.send(reqmod(http_get("http://videohost.example/v/136071201", "videohost.example")))
    line, _, rest = await c.answer()
    assert b" 451 " in rest.split(b"\r\n")[0]
    assert b"EX-2015-0928-VH-R" in rest
    await c.send(reqmod(http_get("http://videohost.example/v/1", "videohost.example")))
    assert (await c.answer())[0] == "ICAP/1.0 204 No Content"
    c.close()
    assert [(r["target"], r["decision"], r["action"], r["client"]) for r in sink.records] == [
        ("GET http://blocked.example/a", "block", "451", "10.0.0.7"),
        ("GET http://videohost.example/v/136071201", "block", "451", "10.0.0.7"),
        ("GET http://videohost.example/v/1", "allow", "pass", "10.0.0.7"),
    ]
    assert server.metrics.decisions["http", "block", "451"] == 2


async def test_a_forged_host_header_does_not_slip_through(server: IcapServer) -> None:
    c = await Client.open(server)
    await c.send(reqmod(http_get("http://blocked.example/", "fine.example")))
    assert b" 451 " in (await c.answer())[2][:40]
    await c.send(reqmod(http_get("http://fine.example/", "blocked.example")))
    assert b" 451 " in (await c.answer())[2][:40]
    c.close()


async def test_userinfo_tricks_in_the_url_do_not_hide_a_blocked_host(
        server: IcapServer) -> None:
    """WHATWG reads `\\` as a path separator: `http://blocked.example\\@fine.example/`
    is blocked.example to a browser; `http://fine.example@blocked.example/` is
    blocked.example to everyone. Neither may be answered 204."""
    c = await Client.open(server)
    for target in ("http://blocked.example\\@fine.example/", "http://fine.example@blocked.example/",
                   "http://a:b@blocked.example/"):
        await c.send(reqmod(http_get(target, "fine.example")))
        line, _, rest = await c.answer()
        assert line == "ICAP/1.0 200 OK", target
        assert rest.split(b" ")[1] in (b"451", b"400"), target
    c.close()


async def test_without_allow_204_the_request_goes_back_unchanged(server: IcapServer) -> None:
    c = await Client.open(server)
    await c.send(reqmod(GET, extra=b""))
    line, h, rest = await c.answer()
    assert line == "ICAP/1.0 200 OK"
    assert h["encapsulated"] == f"req-hdr=0, null-body={len(GET)}"
    assert rest == GET
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    await c.send(reqmod(POST, body, extra=b""))
    line, h, rest = await c.answer()
    assert h["encapsulated"] == f"req-hdr=0, req-body={len(POST)}"
    assert rest == POST + b"hello world"
    c.close()


async def test_a_preview_answered_at_once_and_the_rest_never_crosses(
        server: IcapServer, sink: MemorySink) -> None:
    """Preview: 0 — the verdict comes after the head; the client sends no body."""
    c = await Client.open(server)
    await c.send(reqmod(POST, b"0\r\n\r\n", preview=0, extra=b""))
    assert (await c.answer())[0] == "ICAP/1.0 204 No Content"
    blocked = POST.replace(b"a.example", b"blocked.example")
    await c.send(reqmod(blocked, b"0\r\n\r\n", preview=0))
    assert b" 451 " in (await c.answer())[2][:40]
    # the connection is still in step: a next request is answered
    await c.send(reqmod(GET))
    assert (await c.answer())[0] == "ICAP/1.0 204 No Content"
    c.close()
    assert [r["action"] for r in sink.records] == ["pass", "451", "pass"]


async def test_a_whole_body_with_allow_204_is_read_then_204(server: IcapServer) -> None:
    c = await Client.open(server)
    await c.send(reqmod(POST, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n") + reqmod(GET))
    assert (await c.answer())[0] == "ICAP/1.0 204 No Content"
    assert (await c.answer())[0] == "ICAP/1.0 204 No Content"
    c.close()


async def test_connect_is_judged_by_host(server: IcapServer, sink: MemorySink) -> None:
    c = await Client.open(server)
    connect = b"CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n"
    await c.send(reqmod(connect % (b"blocked.example", b"blocked.example")))
    assert b" 451 " in (await c.answer())[2][:40]
    await c.send(reqmod(connect % (b"news.example", b"news.example")))
    assert (await c.answer())[0] == "ICAP/1.0 204 No Content"
    c.close()
    assert [(r["target"], r["decision"], r["action"]) for r in sink.records] == [
        ("CONNECT blocked.example:443", "block", "451"),
        ("CONNECT news.example:443", "unenforceable", "pass"),
    ]


async def test_a_connect_squid_splices_is_judged_on_its_sni(server: IcapServer,
                                                            sink: MemorySink) -> None:
    """Squid adapts a peeked CONNECT again as it splices, the SNI in
    `X-Writ-SNI` (deploy/squid/sni.conf's adaptation_meta, URL-escaped)."""
    c = await Client.open(server)
    connect = b"CONNECT fine.example:443 HTTP/1.1\r\nHost: fine.example\r\n\r\n"
    for sni in (b"blocked.example", b"news.example", b"-", b"WWW.BLOCKED.EXAMPLE.",
                b"fine.example%0Ablocked.example", b"fine.example"):
        await c.send(reqmod(connect, extra=b"Allow: 204\r\nX-Writ-SNI: " + sni + b"\r\n"))
        answer = await c.answer()
        assert (answer[0] == "ICAP/1.0 204 No Content") == (sni in (b"news.example", b"-",
                                                                   b"fine.example"))
    c.close()
    assert [(r["target"], r["decision"], r["action"]) for r in sink.records] == [
        ("TLS blocked.example", "tls-refused", "tls-refused"),
        ("TLS news.example", "unenforceable", "pass"),
        ("CONNECT fine.example:443", "allow", "pass"),
        ("TLS www.blocked.example", "tls-refused", "tls-refused"),
        ("TLS fine.example%0ablocked.example", "invalid", "tls-refused"),
        ("TLS fine.example", "allow", "pass"),
    ]


async def test_malformed_icap_gets_an_error_and_the_server_lives_on(
        server: IcapServer) -> None:
    for bad, status in [(b"garbage\r\n\r\n", "400"),
                        (b"RESPMOD icap://h/writ ICAP/1.0\r\nEncapsulated: null-body=0\r\n\r\n",
                         "405"),
                        (reqmod(POST, b"zz\r\n"), "400"),
                        (b"OPTIONS icap://h/other ICAP/1.0\r\n\r\n", "404")]:
        c = await Client.open(server)
        await c.send(bad)
        head = await asyncio.wait_for(c.reader.readuntil(b"\r\n\r\n"), 10)
        assert head.split(b" ")[1].decode() == status
        assert await c.closed()
    c = await Client.open(server)
    await c.send(OPTIONS)
    assert (await c.answer())[0] == "ICAP/1.0 200 OK"
    c.close()


async def test_an_unreadable_http_request_is_refused_400(server: IcapServer,
                                                         sink: MemorySink) -> None:
    c = await Client.open(server)
    await c.send(reqmod(b"GET http://a.example/ HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"))
    assert b" 400 " in (await c.answer())[2][:40]
    c.close()
    assert sink.records[-1]["decision"] == "invalid"


async def test_connections_beyond_the_limit_get_503(sink: MemorySink) -> None:
    srv = await run_icap(make_holder(), icap_policy(max_connections=2), sink)
    try:
        held = [await Client.open(srv) for _ in range(2)]
        for c in held:  # both are being served
            await c.send(OPTIONS)
            await c.answer()
        extra = await Client.open(srv)
        head = await asyncio.wait_for(extra.reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"ICAP/1.0 503 ")
        assert await extra.closed()
        for c in held:
            c.close()
    finally:
        await srv.shutdown()


async def test_istag_changes_with_the_blocklist(sink: MemorySink) -> None:
    holder = make_holder()
    srv = await run_icap(holder, icap_policy(), sink)
    try:
        c = await Client.open(srv)
        await c.send(OPTIONS)
        first = (await c.answer())[1]["istag"]
        await c.send(reqmod(GET))
        assert (await c.answer())[1]["istag"] == first  # same list, same tag
        holder.set(Blocklist(ACTS[:1]), datetime(2016, 1, 1, tzinfo=UTC))
        await c.send(OPTIONS)
        assert (await c.answer())[1]["istag"] != first
        c.close()
    finally:
        await srv.shutdown()


async def test_without_a_blocklist_it_fails_as_the_policy_says(sink: MemorySink) -> None:
    for fail, expected in [(FailMode.CLOSED, b" 503 "), (FailMode.OPEN, None)]:
        srv = await run_icap(BlocklistHolder(), replace(icap_policy(), fail=fail), sink,
                             metrics=Metrics())
        try:
            c = await Client.open(srv)
            await c.send(reqmod(GET))
            line, _, rest = await c.answer()
            if expected is None:
                assert line == "ICAP/1.0 204 No Content"
            else:
                assert expected in rest[:40]
            c.close()
        finally:
            await srv.shutdown()
    assert [r["decision"] for r in sink.records] == ["no-blocklist", "no-blocklist"]


async def test_an_idle_connection_is_closed(sink: MemorySink) -> None:
    srv = await run_icap(make_holder(), icap_policy(idle_timeout=0.2), sink)
    try:
        c = await Client.open(srv)
        await c.send(reqmod(POST, b"5\r\nhel"))  # and then nothing
        assert await c.closed()
    finally:
        await srv.shutdown()
