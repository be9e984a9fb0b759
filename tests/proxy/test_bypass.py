"""Walking around the proxy, as a blocked site's operator would (issue: HTTP
enforcement a blocked site cannot walk around): a real mitmproxy on loopback,
raw sockets for the client, a cooperating origin that records every byte.

Each test is one way around that was found open; it failed before its fix.
The rule they hold: every connection ends judged, refused, or relayed raw
only to a destination no order touches, with a record saying so; the record
names what went upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.blocklist.builders import T0, act, url
from tests.proxy.conftest import ACTS, policy
from tests.proxy.raw import RawClient, RawOrigin
from tests.proxy.tls_helpers import client_hello_bytes
from writ.audit import MemorySink
from writ.blocklist import Blocklist, BlocklistHolder
from writ.proxy import ProxyHandle, run_proxy

pytestmark = pytest.mark.e2e

KEPT = "/v/136071201"  # kept blocked on the restored videohost.example
IP_ACTS = (act("ORD-IP", targets=(url("http://127.0.0.2/phish/login"),
                                  url("http://[::1]/x"))),)


def holder() -> BlocklistHolder:
    h = BlocklistHolder()
    h.set(Blocklist(ACTS + IP_ACTS), T0.replace(year=2016))
    return h


@pytest.fixture
async def origin() -> AsyncIterator[RawOrigin]:
    o = await RawOrigin().start()
    yield o
    await o.stop()


@pytest.fixture
async def proxy(tmp_path: Path, sink: MemorySink) -> AsyncIterator[ProxyHandle]:
    handle = await run_proxy(holder(), policy(log_allowed=True), sink, listen="127.0.0.1:0",
                             mode="regular", confdir=str(tmp_path))
    yield handle
    await handle.shutdown()


async def tunnel(proxy: ProxyHandle, authority: str) -> RawClient:
    c = await RawClient.open(proxy.port)
    head = await c.connect(authority)
    assert head.startswith(b"HTTP/1.1 200"), head
    return c


async def ask_through_tunnel(proxy: ProxyHandle, origin: RawOrigin, data: bytes) -> bytes:
    """Through a tunnel to the origin (127.0.0.1): send `data`, return the
    head of the answer."""
    c = await tunnel(proxy, f"127.0.0.1:{origin.port}")
    await c.send(data)
    head = await c.head()
    c.close()
    return head


def decisions(sink: MemorySink) -> list[tuple[str, str, str]]:
    return [(r["decision"], r["action"], r["target"]) for r in sink.records]


# -- 1. a ClientHello split after 1-2 bytes ----------------------------------

@pytest.mark.parametrize("first", [1, 2])
async def test_split_clienthello_is_still_judged(proxy: ProxyHandle, origin: RawOrigin,
                                                 sink: MemorySink, first: int) -> None:
    hello = client_hello_bytes("www.blocked.example")
    c = await tunnel(proxy, f"127.0.0.1:{origin.port}")
    await c.send(hello[:first], pause=0.3)
    await c.send(hello[first:])
    await c.rest()
    c.close()
    assert bytes(origin.raw) == b""
    assert ("tls-refused", "tls-refused", "TLS www.blocked.example") in decisions(sink)


# -- 2. plain HTTP in a tunnel, split or prefixed ------------------------------

async def test_request_line_split_after_the_method_is_judged(
        proxy: ProxyHandle, origin: RawOrigin, sink: MemorySink) -> None:
    c = await tunnel(proxy, f"127.0.0.1:{origin.port}")
    await c.send(b"GET", pause=0.3)
    await c.send(f" {KEPT} HTTP/1.1\r\nHost: videohost.example\r\n\r\n".encode())
    head = await c.head()
    c.close()
    assert head.startswith(b"HTTP/1.1 451"), head
    assert origin.requests == []


async def test_request_after_a_leading_crlf_is_judged(
        proxy: ProxyHandle, origin: RawOrigin) -> None:
    head = await ask_through_tunnel(
        proxy, origin, f"\r\nGET {KEPT} HTTP/1.1\r\nHost: videohost.example\r\n\r\n".encode())
    assert not head.startswith(b"HTTP/1.1 200"), head
    assert origin.requests == []


async def test_raw_bytes_to_a_host_with_url_rules_are_refused_and_recorded(
        proxy: ProxyHandle, origin: RawOrigin, sink: MemorySink) -> None:
    # 127.0.0.2 carries URL rules (ORD-IP): opaque bytes there cannot be judged.
    c = await tunnel(proxy, f"127.0.0.2:{origin.port}")
    await c.send(b"\x00\x01 not http, not tls\r\n")
    await c.rest()
    c.close()
    assert bytes(origin.raw) == b""
    assert any(r["target"].startswith("TCP 127.0.0.2:") and r["action"] == "closed"
               for r in sink.records), decisions(sink)


async def test_raw_bytes_to_a_host_no_order_names_are_relayed_and_recorded(
        proxy: ProxyHandle, origin: RawOrigin, sink: MemorySink) -> None:
    c = await tunnel(proxy, f"127.0.0.1:{origin.port}")
    await c.send(b"\x00\x01 some other protocol\r\n")
    for _ in range(100):
        if origin.raw:
            break
        await asyncio.sleep(0.05)
    c.close()
    assert bytes(origin.raw) == b"\x00\x01 some other protocol\r\n"
    assert ("allow", "raw-tcp", f"TCP 127.0.0.1:{origin.port}") in decisions(sink)


# -- 3. absolute-form inside a tunnel -----------------------------------------

async def test_absolute_form_in_a_tunnel_is_judged_on_its_own_authority(
        proxy: ProxyHandle, origin: RawOrigin) -> None:
    head = await ask_through_tunnel(
        proxy, origin, f"GET http://videohost.example{KEPT} HTTP/1.1\r\n"
        "Host: other.example\r\n\r\n".encode())
    assert head.startswith(b"HTTP/1.1 451"), head
    assert origin.requests == []


async def test_the_record_names_the_url_that_went_upstream(
        proxy: ProxyHandle, origin: RawOrigin, sink: MemorySink) -> None:
    head = await ask_through_tunnel(
        proxy, origin, b"GET http://fine.example/article/5 HTTP/1.1\r\nHost: other.example\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    # what the origin was asked for, and what the record names, agree
    assert origin.requests == ["GET /article/5 HTTP/1.1 | fine.example"]
    assert ("allow", "pass", "GET http://fine.example/article/5") in decisions(sink)


# -- 4. a non-websocket 101 ----------------------------------------------------

async def test_non_websocket_101_does_not_open_a_raw_relay(
        proxy: ProxyHandle, origin: RawOrigin) -> None:
    c = await RawClient.open(proxy.port)
    await c.send(f"GET http://127.0.0.1:{origin.port}/upgrade HTTP/1.1\r\nHost: fine.example\r\n"
                 "Connection: Upgrade\r\nUpgrade: x-raw\r\n\r\n".encode(), pause=0.3)
    await c.head()
    await c.send(f"GET {KEPT} HTTP/1.1\r\nHost: videohost.example\r\n\r\n".encode(), pause=0.3)
    c.close()
    assert not any(KEPT in r for r in origin.requests), origin.requests


# -- 5. blocked uploads ----------------------------------------------------------

async def test_expect_continue_on_a_blocked_url_gets_451_not_100(
        proxy: ProxyHandle, origin: RawOrigin) -> None:
    head = await ask_through_tunnel(
        proxy, origin, f"POST {KEPT} HTTP/1.1\r\nHost: videohost.example\r\n"
        "Content-Length: 314572800\r\nExpect: 100-continue\r\n\r\n".encode())
    assert head.startswith(b"HTTP/1.1 451"), head


async def test_blocked_upload_is_answered_before_its_body(
        proxy: ProxyHandle, origin: RawOrigin, sink: MemorySink) -> None:
    c = await tunnel(proxy, f"127.0.0.1:{origin.port}")
    await c.send(f"POST {KEPT} HTTP/1.1\r\nHost: videohost.example\r\n"
                 "Content-Length: 314572800\r\n\r\n".encode() + b"x" * 65536)
    head = await c.head()  # the body never comes: the answer must not wait for it
    c.close()
    assert head.startswith(b"HTTP/1.1 451"), head
    assert b"connection: close" in head.lower()
    assert origin.requests == []
    assert ("block", "451", f"POST http://videohost.example{KEPT}") in decisions(sink)


# -- 6. IP hosts in every spelling ---------------------------------------------

@pytest.mark.parametrize("spelling", ["2130706434", "0x7f.0.0.2", "0177.0.0.2", "127.2",
                                      "[::ffff:127.0.0.2]", "127.0.0.2"])
async def test_ip_rule_holds_for_every_spelling(proxy: ProxyHandle, sink: MemorySink,
                                                spelling: str) -> None:
    c = await RawClient.open(proxy.port)
    await c.send(f"GET http://{spelling}/phish/login HTTP/1.1\r\nHost: {spelling}\r\n\r\n"
                 .encode())
    head = await c.head()
    c.close()
    assert head.startswith(b"HTTP/1.1 451"), head
    assert ("block", "451", "GET http://127.0.0.2/phish/login") in decisions(sink)


@pytest.mark.parametrize("spelling", ["[0:0:0:0:0:0:0:1]", "[::1]", "[0::1]"])
async def test_ipv6_rule_holds_for_every_spelling(proxy: ProxyHandle, spelling: str) -> None:
    c = await RawClient.open(proxy.port)
    await c.send(f"GET http://{spelling}/x HTTP/1.1\r\nHost: {spelling}\r\n\r\n".encode())
    head = await c.head()
    c.close()
    assert head.startswith(b"HTTP/1.1 451"), head


# -- 7. encoded separators -------------------------------------------------------

@pytest.mark.parametrize("path", ["/v%2F136071201", "/v%2f136071201", "/v/136071201;jsessionid=x",
                                  "/v\\136071201", "/v%5C136071201"])
async def test_encoded_separators_do_not_walk_around_a_url_rule(
        proxy: ProxyHandle, origin: RawOrigin, path: str) -> None:
    head = await ask_through_tunnel(
        proxy, origin, f"GET {path} HTTP/1.1\r\nHost: videohost.example\r\n\r\n".encode())
    assert head.startswith(b"HTTP/1.1 451"), head
    assert origin.requests == []


async def test_encoded_separator_under_a_prefix_rule(proxy: ProxyHandle,
                                                     origin: RawOrigin) -> None:
    head = await ask_through_tunnel(
        proxy, origin, b"GET /forum%2Fthread/9 HTTP/1.1\r\nHost: news.example\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 451"), head


# -- 8. no over-blocking of hosts no order names -----------------------------------

@pytest.mark.parametrize(("host", "path"), [
    ("fine.example", "/?q=100%"),
    ("fine.example", "/long?" + "a" * 17000),
    ("foo-.other.example", "/"),
])
async def test_hosts_no_order_names_are_never_refused(
        proxy: ProxyHandle, origin: RawOrigin, host: str, path: str) -> None:
    head = await ask_through_tunnel(
        proxy, origin, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert head.startswith(b"HTTP/1.1 200"), head


async def test_unreadable_path_on_a_host_with_url_rules_is_refused(
        proxy: ProxyHandle, origin: RawOrigin, sink: MemorySink) -> None:
    head = await ask_through_tunnel(
        proxy, origin, b"GET /v/%zz HTTP/1.1\r\nHost: videohost.example\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert origin.requests == []
    assert sink.records[-1]["decision"] == "invalid"


# -- 9. obs-fold, normalised records, mitmproxy's own 400s --------------------------

async def test_obs_fold_host_is_not_forwarded_unjudged(
        proxy: ProxyHandle, origin: RawOrigin) -> None:
    head = await ask_through_tunnel(
        proxy, origin, f"GET {KEPT} HTTP/1.1\r\nX: y\r\n Host: videohost.example\r\n\r\n".encode())
    assert not head.startswith(b"HTTP/1.1 200"), head
    assert bytes(origin.raw) == b""


async def test_records_name_hosts_canonically(proxy: ProxyHandle, sink: MemorySink) -> None:
    c = await RawClient.open(proxy.port)
    head = await c.connect("BLOCKED.EXAMPLE:443")
    c.close()
    assert head.startswith(b"HTTP/1.1 451"), head
    assert ("block", "451", "CONNECT blocked.example:443") in decisions(sink)


async def test_malformed_request_answered_by_mitmproxy_is_recorded(
        proxy: ProxyHandle, origin: RawOrigin, sink: MemorySink) -> None:
    head = await ask_through_tunnel(
        proxy, origin, b"GET / HTTP/1.1\r\nHost: fine.example\r\nContent-Length: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert any(r["decision"] == "invalid" and r["action"] == "400" for r in sink.records), \
        decisions(sink)


async def test_first_bytes_that_never_complete_are_closed_and_recorded(
        proxy: ProxyHandle, origin: RawOrigin, sink: MemorySink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from writ.proxy import stack

    monkeypatch.setattr(stack, "WAIT_SECONDS", 0.5)
    c = await tunnel(proxy, f"127.0.0.1:{origin.port}")
    await c.send(b"\x16")  # a TLS record header's first byte, and then nothing
    assert await c.rest() == b""  # closed by the proxy (the test would time out otherwise)
    c.close()
    assert bytes(origin.raw) == b""
    assert ("invalid", "closed", f"TCP 127.0.0.1:{origin.port}") in decisions(sink)


async def test_a_second_host_header_is_judged_too(proxy: ProxyHandle, origin: RawOrigin) -> None:
    head = await ask_through_tunnel(
        proxy, origin,
        f"GET {KEPT} HTTP/1.1\r\nHost: fine.example\r\nHost: videohost.example\r\n\r\n".encode())
    assert not head.startswith(b"HTTP/1.1 200"), head
    assert origin.requests == []


async def test_a_request_mitmproxy_refuses_as_smuggling_is_recorded_once(
        proxy: ProxyHandle, origin: RawOrigin, sink: MemorySink) -> None:
    head = await ask_through_tunnel(
        proxy, origin, b"POST /x HTTP/1.1\r\nHost: fine.example\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert origin.requests == []
    invalid = [r for r in sink.records if r["decision"] == "invalid"]
    assert [(r["action"], r["target"]) for r in invalid] == [("400", "POST http://fine.example/x")]


async def test_tls_records_name_the_sni_canonically(proxy: ProxyHandle, origin: RawOrigin,
                                                    sink: MemorySink) -> None:
    c = await tunnel(proxy, f"127.0.0.1:{origin.port}")
    await c.send(client_hello_bytes("WWW.Blocked.Example"))
    await c.rest()
    c.close()
    assert ("tls-refused", "tls-refused", "TLS www.blocked.example") in decisions(sink)


@pytest.mark.parametrize("request_head", [
    b"GET / HTTP/1.1\r\nHost fine.example\r\n\r\n",  # a header line without a colon
    b"GET / HTTP/9\r\nHost: fine.example\r\n\r\n",  # no such HTTP version
])
async def test_a_head_mitmproxy_cannot_parse_is_recorded(
        proxy: ProxyHandle, origin: RawOrigin, sink: MemorySink, request_head: bytes) -> None:
    head = await ask_through_tunnel(proxy, origin, request_head)
    assert head.startswith(b"HTTP/1.1 400"), head
    assert origin.requests == []
    assert ("invalid", "400", f"HTTP 127.0.0.1:{origin.port}") in decisions(sink)


async def test_a_head_mitmproxy_cannot_parse_is_recorded_on_the_proxy_port(
        proxy: ProxyHandle, sink: MemorySink) -> None:
    c = await RawClient.open(proxy.port)
    await c.send(b"GET http://fine.example/ HTTP/1.1\r\nHost fine.example\r\n\r\n")
    head = await c.head()
    c.close()
    assert head.startswith(b"HTTP/1.1 400"), head
    assert [r["decision"] for r in sink.records] == ["invalid"]


async def test_blocked_http2_upload_is_answered_before_its_body(
        tmp_path: Path, origin: RawOrigin) -> None:
    """Inside intercepted TLS with HTTP/2: the 451 comes on the stream at once."""
    import ssl

    import h2.config
    import h2.connection
    import h2.events

    from writ.policies import TlsMode

    handle = await run_proxy(holder(), policy(tls=TlsMode.INTERCEPT), MemorySink(),
                             listen="127.0.0.1:0", mode="regular", confdir=str(tmp_path))
    try:
        c = await tunnel(handle, "news.example:443")  # a host with URL rules: intercepted
        tls_ctx = ssl.create_default_context()
        tls_ctx.check_hostname, tls_ctx.verify_mode = False, ssl.CERT_NONE
        tls_ctx.set_alpn_protocols(["h2"])
        await asyncio.wait_for(c.writer.start_tls(tls_ctx, server_hostname="news.example"), 10)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "POST"), (":path", "/watch?v=abc"),
                              (":authority", "news.example"), (":scheme", "https"),
                              ("content-length", "314572800")])
        conn.send_data(1, b"x" * 16384)
        await c.send(conn.data_to_send())
        status = None
        while status is None:
            data = await asyncio.wait_for(c.reader.read(65536), 10)
            assert data, "the proxy closed without answering"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == 1:
                    status = dict(event.headers)[b":status"]
            await c.send(conn.data_to_send())
        c.close()
        assert status == b"451"
    finally:
        await handle.shutdown()
